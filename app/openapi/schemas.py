"""What every part of the OpenAPI document shares: the error shape, references, answers, the 429."""

NULLABLE_STRING = {"type": ["string", "null"]}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema_name, description):
    return {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}


def error_response(description):
    return json_response("Error", description)


ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {"code": {"type": "string", "description": "stable machine-readable code"},
                       "message": {"type": "string", "description": "what was wrong and why"}}}},
}

RATE_LIMITED = json_response("Error", "too many requests from this client (code rate_limited); Retry-After says "
                                      "when to try again, X-RateLimit-Limit/-Remaining/-Reset where it stands")
