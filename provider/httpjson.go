package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// maxBody bounds what is read of one vendor response.
const maxBody = 32 << 20

// bodies are response buffers for DoJSON; one larger than maxPooledBody
// is left to the GC rather than kept.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 1 << 20

// ErrorParser extracts a vendor's error code and message from an error body.
type ErrorParser func(body []byte) (code, message string)

// MayHaveKey reports whether body could hold key as an object key, as
// encoding/json matches keys (any case). false is certain: an error
// parser can skip decoding every good answer a second time. A body with
// \u escapes or bytes outside ASCII (where json folds more letters) is
// always a maybe.
func MayHaveKey(body []byte, key string) bool {
	for _, c := range body {
		if c >= 0x80 {
			return true
		}
	}
	if bytes.Contains(body, []byte(`\u`)) {
		return true
	}
	k := []byte(key)
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '"')
		if j < 0 {
			return false
		}
		i += j + 1
		if len(body)-i > len(k) && body[i+len(k)] == '"' && bytes.EqualFold(body[i:i+len(k)], k) {
			return true
		}
	}
}

// DoJSON sends req with hc and decodes a 2xx JSON answer into out. A non-2xx
// answer becomes *HTTPError carrying the vendor's reason (via parse); a body
// that is not JSON gets an error that says so.
func DoJSON(hc *http.Client, req *http.Request, vendor string, parse ErrorParser, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", vendor, req.Method, req.URL.Path, stripURL(err))
	}
	defer resp.Body.Close()
	// Read into a pooled buffer sized by Content-Length: nothing decoded
	// from it keeps a reference (encoding/json copies strings and raw
	// values), and growing a fresh slice for every answer was a tenth of a
	// collection's allocations.
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			bodies.Put(buf)
		}
	}()
	if n := resp.ContentLength; n > 0 && n < maxBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxBody))
	body := buf.Bytes()
	if err != nil {
		return fmt.Errorf("%s %s %s: reading response: %w", vendor, req.Method, req.URL.Path, stripURL(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Vendor: vendor, Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode}
		if parse != nil {
			he.Code, he.Message = parse(body)
		}
		if he.Message == "" {
			he.Message = http.StatusText(resp.StatusCode)
		}
		return he
	}
	// A 2xx that carries the vendor's error shape is a failure hidden by
	// a gateway, not data.
	if parse != nil {
		if code, msg := parse(body); msg != "" {
			return &HTTPError{Vendor: vendor, Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Code: code,
				Message: "answered with an error body: " + msg}
		}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if ct != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json") { // +json: RFC 6839, e.g. a versioned media type
			return fmt.Errorf("%s %s %s: expected JSON, got %q (%d bytes): %v", vendor, req.Method, req.URL.Path, ct, len(body), err)
		}
		return fmt.Errorf("%s %s %s: response is not valid JSON (%d bytes): %v", vendor, req.Method, req.URL.Path, len(body), err)
	}
	return nil
}

// stripURL drops the URL from a *url.Error: the message stays, and a
// query string can never carry a credential into a log line.
func stripURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
