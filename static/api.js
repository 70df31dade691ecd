// Talking to the JSON API: its error shape ({"error": {"message": …}}), reading a document, posting a form.

// The API's message in an error answer, or the fallback when the answer has none (not JSON, a proxy's page).
export function errorMessage(body, fallback) {
  return body && body.error ? body.error.message : fallback;
}

// GET a JSON document: {response, body}, body null when the answer is not JSON; rejects when the server
// cannot be reached.
export async function getJson(url, init) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, ...init });
  const body = await response.json().catch(() => null);
  return { response, body };
}

// POST a form that creates a job or a scan. Resolves to {page, doc} (the new resource's page and its document)
// on success, else to {status, message}: the HTTP status and the API's message (null when the answer has none),
// or status 0 and the network error's message when the server could not be reached.
export async function postForm(url, data) {
  let response;
  try {
    response = await fetch(url, { method: "POST", body: data });
  } catch (failure) {
    return { status: 0, message: failure.message };
  }
  const body = await response.json().catch(() => null);
  if (response.ok && body && body.links) return { page: body.links.page, doc: body };
  return { status: response.status, message: errorMessage(body, null) };
}
