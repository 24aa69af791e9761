"""Human interaction, as a blueprint registered into the app: send a challenge code, then wait
for the code to come back (an external event) or for the time to run out, three tries."""

import json
import secrets
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df

OUTBOX = Path(__file__).resolve().parent / "outbox"

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context")
def phone_verification(context: df.DurableOrchestrationContext):
    request = context.get_input()
    phone_number = request["phone"]
    if not phone_number.startswith("+"):
        raise Exception("Please provide a phone number beginning with '+'")

    challenge_code = yield context.call_activity("send_sms_challenge", phone_number)

    expiration = context.current_utc_datetime + timedelta(
        seconds=request.get("timeoutSeconds", 180))
    timeout_task = context.create_timer(expiration)

    authorized = False
    for _ in range(3):
        challenge_response_task = context.wait_for_external_event("SmsChallengeResponse")
        winner = yield context.task_any([challenge_response_task, timeout_task])
        if winner == challenge_response_task:
            # We got back a response! Compare it to the challenge code.
            if challenge_response_task.result == challenge_code:
                authorized = True
                break
        else:
            # Timeout expired
            break

    if not timeout_task.is_completed:
        # All pending timers must be complete or canceled before the function exits.
        timeout_task.cancel()

    return authorized


@bp.activity_trigger(input_name="phoneNumber")
def send_sms_challenge(phoneNumber: str) -> str:
    code = str(secrets.randbelow(10000)).zfill(4)
    OUTBOX.mkdir(exist_ok=True)
    payload = {"body": f"Your verification code is {code}", "to": phoneNumber}
    (OUTBOX / f"sms-{phoneNumber}.json").write_text(json.dumps(payload))
    return code
