"""The OpenAPI document itself; responses are checked against it in the other tests."""
import re


def test_openapi_document_is_served_and_valid(client, openapi_spec):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == openapi_spec
    assert openapi_spec["openapi"].startswith("3.")


def test_every_api_route_is_documented(app, openapi_spec):
    documented = {(path, method) for path, item in openapi_spec["paths"].items() for method in item
                  if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <path:name> → {name}
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is not in the OpenAPI document"


def test_error_responses_match_the_error_schema(client, check_against_spec):
    response = client.get("/api/jobs/" + "f" * 32)
    check_against_spec("/api/jobs/{job_id}", "get", 404, response.get_json())
    response = client.get("/api/jobs/" + "f" * 32 + "/files/x.png")
    check_against_spec("/api/jobs/{job_id}/files/{name}", "get", 404, response.get_json())
    response = client.post("/api/jobs", data={"top_k": "1"}, content_type="multipart/form-data")
    check_against_spec("/api/jobs", "post", 400, response.get_json())
