"""Says hello, and counts how often this sandbox has been invoked (warm sandboxes keep state)."""

invocations = 0


def handler(event, context):
    global invocations
    invocations += 1
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"greeting {name}")
    return {
        "message": f"Hello, {name}!",
        "runtime": "python",
        "request_id": context.aws_request_id,
        "invocations": invocations,
    }
