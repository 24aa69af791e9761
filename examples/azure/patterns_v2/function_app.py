"""The Durable Functions patterns in the v2 (decorator) model, written the way Azure's samples
write them: function chaining, fan-out/fan-in, monitor, a sub-orchestration with retries, and
(in approval.py, a blueprint) human interaction.

Run it unchanged with ``durable run examples/azure/patterns_v2`` or with Core Tools. The
outside services of the official samples (Blob storage, GitHub, Twilio) are files beside the
app here: ``outbox/`` holds the "sent" messages, ``issues.json`` the open-issue count.
"""

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
from approval import bp

HERE = Path(__file__).resolve().parent
OUTBOX = HERE / "outbox"

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
myApp.register_functions(bp)


# An HTTP-triggered function with a Durable Functions client binding: starts any orchestrator,
# with the request body (JSON) as its input.
@myApp.route(route="orchestrators/{functionName}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    function_name = req.route_params.get('functionName')
    body = req.get_body()
    payload = json.loads(body.decode()) if body else None
    instance_id = await client.start_new(function_name, client_input=payload)
    logging.info(f"Started orchestration with ID = '{instance_id}'.")
    return client.create_check_status_response(req, instance_id)


# Function chaining
@myApp.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    result1 = yield context.call_activity('say_hello', "Tokyo")
    result2 = yield context.call_activity('say_hello', "Seattle")
    result3 = yield context.call_activity('say_hello', "London")
    return [result1, result2, result3]


@myApp.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


# Fan-out/fan-in: back up every file under a directory (here: copy into backup/), in parallel.
@myApp.orchestration_trigger(context_name="context")
def backup_site_content(context: df.DurableOrchestrationContext):
    root_directory: str = context.get_input()
    if not root_directory:
        raise Exception("A directory path is required as input")

    files = yield context.call_activity("get_file_list", root_directory)
    tasks = []
    for file in files:
        tasks.append(context.call_activity("copy_file_to_backup", file))

    results = yield context.task_all(tasks)
    total_bytes = sum(results)
    return total_bytes


@myApp.activity_trigger(input_name="rootDirectory")
def get_file_list(rootDirectory: str):
    all_file_paths = []
    for path, _, files in os.walk(rootDirectory):
        for name in files:
            all_file_paths.append(os.path.join(path, name))
    return sorted(all_file_paths)


@myApp.activity_trigger(input_name="filePath")
def copy_file_to_backup(filePath: str) -> int:
    backup = HERE / "backup"
    backup.mkdir(exist_ok=True)
    data = Path(filePath).read_bytes()
    (backup / Path(filePath).name).write_bytes(data)
    return len(data)


# Monitor: poll until the repository has too many open issues (or the monitor expires).
@myApp.orchestration_trigger(context_name="context")
def monitor_issues(context: df.DurableOrchestrationContext):
    monitoring_request = context.get_input()
    repo_url: str = monitoring_request["repo"]
    phone: str = monitoring_request["phone"]
    poll_seconds: int = monitoring_request.get("pollSeconds", 60)

    expiry_time = context.current_utc_datetime + timedelta(
        seconds=monitoring_request.get("expirySeconds", 300))
    while context.current_utc_datetime < expiry_time:
        too_many_issues = yield context.call_activity("too_many_open_issues", repo_url)
        if too_many_issues:
            yield context.call_activity("send_alert", phone)
            break
        else:
            context.set_custom_status("The repository does not have too many issues, for now ...")
            next_check = context.current_utc_datetime + timedelta(seconds=poll_seconds)
            yield context.create_timer(next_check)

    return "Monitor completed!"


@myApp.activity_trigger(input_name="repoID")
def too_many_open_issues(repoID: str) -> bool:
    issues = json.loads((HERE / "issues.json").read_text()) if (HERE / "issues.json").exists() \
        else {}
    return issues.get(repoID, 0) >= 3


@myApp.activity_trigger(input_name="phoneNumber")
def send_alert(phoneNumber: str) -> str:
    OUTBOX.mkdir(exist_ok=True)
    message = {"to": phoneNumber, "body": "There are too many open issues"}
    (OUTBOX / f"alert-{phoneNumber}.json").write_text(json.dumps(message))
    return "Message sent!"


# A sub-orchestration whose activity fails twice before it succeeds (retried by the host).
@myApp.orchestration_trigger(context_name="context")
def resilient_parent(context: df.DurableOrchestrationContext):
    city = context.get_input()
    greeting = yield context.call_sub_orchestrator("resilient_child", city)
    return {"greeting": greeting, "parent": context.instance_id}


@myApp.orchestration_trigger(context_name="context")
def resilient_child(context: df.DurableOrchestrationContext):
    retry_options = df.RetryOptions(first_retry_interval_in_milliseconds=200,
                                    max_number_of_attempts=3)
    result = yield context.call_activity_with_retry("flaky_hello", retry_options,
                                                    context.get_input())
    return result


@myApp.activity_trigger(input_name="city")
def flaky_hello(city: str) -> str:
    attempts = HERE / f"attempts-{city}.log"
    with attempts.open("a") as log:
        log.write("x")
    if len(attempts.read_text()) < 3:
        raise ValueError(f"{city} is not reachable yet")
    return f"Hello {city}!"
