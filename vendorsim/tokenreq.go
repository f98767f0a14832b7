package vendorsim

import (
	"mime"
	"net/http"
	"net/url"
)

// writeOAuthError answers in RFC 6749 §5.2's error shape.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// tokenForm reads a token request as RFC 6749 says it comes: POST,
// form-url-encoded, bounded. It answers the error itself and returns false
// when the request is not one.
func tokenForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint takes POST")
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "send the parameters form-url-encoded")
		return nil, false
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the form does not parse")
		return nil, false
	}
	return r.PostForm, true
}
