// The API explorer at /docs: Swagger UI (local copy of swagger-ui-dist) on the server's OpenAPI document.
// A file rather than an inline script, so the Content-Security-Policy needs no 'unsafe-inline'.
window.ui = window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
