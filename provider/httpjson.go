package provider

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// maxBody bounds what is read of one vendor response.
const maxBody = 32 << 20

// bodies are response buffers for DoJSON; one larger than maxPooledBody
// is left to the GC rather than kept.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 1 << 20

// ErrorParser extracts a vendor's error code and message from an error body.
type ErrorParser func(body []byte) (code, message string)

// decodeOptions are the one set of options every vendor answer is
// decoded with (encoding/json/v2 through go-json-experiment/json, which
// scans a body once where v1 scanned it twice). They keep what v1 did
// that vendors' answers rely on:
//   - names match case-insensitively, as strings.EqualFold (v2 alone
//     would also ignore '_' and '-': "owner_account_sid" would match
//     a field "ownerAccountSid");
//   - a duplicate name is accepted, the last one wins (v2 rejects the
//     answer; a vendor's quirk should not lose a whole section);
//   - invalid UTF-8 in a string becomes U+FFFD (v2 rejects it; labels
//     are made valid UTF-8 anyway, see Label).
//
// Null leaves a fresh value at its zero value and numbers decode into
// any as float64 in both versions, so nothing is needed for those.
var decodeOptions = json.JoinOptions(
	json.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true),
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
)

// Unmarshal decodes a vendor's JSON into out with the exporter's options;
// every vendor decodes through it (or DecodeFunc) rather than picking
// its own.
func Unmarshal(data []byte, out any) error {
	return json.Unmarshal(data, out, decodeOptions)
}

// UnmarshalDecode decodes the next value of dec into out (inside a
// DecodeFunc): dec carries the options of Unmarshal.
func UnmarshalDecode(dec *jsontext.Decoder, out any) error {
	return json.UnmarshalDecode(dec, out)
}

// DecodeFunc is an out for DoJSON that walks the answer itself, for a
// shape a struct cannot state (a list under a name known at run time).
// An error it returns that is not a syntax error is shown as it is, so it
// should say which part of the answer was wrong.
type DecodeFunc func(dec *jsontext.Decoder) error

// decoders are reused by DecodeJSON: a Decoder keeps its buffer.
var decoders = sync.Pool{New: func() any { return new(pooledDecoder) }}

type pooledDecoder struct {
	b   bytes.Buffer // a Decoder reads a bytes.Buffer in place, without a copy
	dec jsontext.Decoder
}

// DecodeJSON runs f over data, which must hold exactly one JSON value,
// with the options of Unmarshal.
func DecodeJSON(data []byte, f DecodeFunc) error {
	pd := decoders.Get().(*pooledDecoder)
	pd.b = *bytes.NewBuffer(data) // only read: data is not written to
	pd.dec.Reset(&pd.b, decodeOptions)
	err := f(&pd.dec)
	if err == nil {
		// As Unmarshal: nothing may follow the value.
		if _, err2 := pd.dec.ReadToken(); err2 == nil {
			err = &jsontext.SyntacticError{ByteOffset: pd.dec.InputOffset(), Err: errors.New("more than one JSON value")}
		} else if err2 != io.EOF {
			err = err2
		}
	}
	pd.b = bytes.Buffer{}
	pd.dec.Reset(&pd.b) // keep no reference to data
	decoders.Put(pd)
	return err
}

// MayHaveKey reports whether body could hold key as an object key, as
// Unmarshal matches keys (any case, strings.EqualFold). false is certain:
// an error parser can skip decoding every good answer a second time.
// key must be ASCII letters. A string with \ escapes or bytes
// outside ASCII (where folding matches more letters) is a maybe when its
// length allows it to decode to len(key) characters.
func MayHaveKey(body []byte, key string) bool {
	k := []byte(key)
	// Most answers are plain ASCII: then no string needs a closer look.
	plain := bytes.IndexByte(body, '\\') < 0 && isASCII(body)
	// Every '"' is tried as the start of a string (a closing one too:
	// that only adds maybes), in one pass. A key that decodes to key
	// holds no '"', so its string ends at the next '"'.
	for q := bytes.IndexByte(body, '"'); q >= 0; {
		rest := body[q+1:]
		n := bytes.IndexByte(rest, '"')
		if n < 0 {
			return false // an unterminated string: not JSON
		}
		s := rest[:n]
		switch {
		case len(s) == len(k):
			// An escape or a byte outside ASCII makes a string decode
			// to fewer characters than its length.
			if bytes.EqualFold(s, k) {
				return true
			}
		case !plain && len(s) > len(k) && len(s) <= 12*len(k) && (!isASCII(s) || bytes.IndexByte(s, '\\') >= 0):
			// Each character of the decoded string takes 1 to 12
			// bytes of JSON (\uXXXX\uXXXX for a surrogate pair).
			return true
		}
		q += 1 + n
	}
	return false
}

// isASCII reports whether b has no byte outside ASCII, 8 bytes a step.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
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
	// from it keeps a reference (Unmarshal copies strings and raw values;
	// a DecodeFunc must copy what it keeps), and growing a fresh slice for
	// every answer was a tenth of a collection's allocations.
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
	f, own := out.(DecodeFunc)
	if own {
		err = DecodeJSON(body, f)
	} else {
		err = Unmarshal(body, out)
	}
	if err != nil {
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if ct != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json") { // +json: RFC 6839, e.g. a versioned media type
			return fmt.Errorf("%s %s %s: expected JSON, got %q (%d bytes): %w", vendor, req.Method, req.URL.Path, ct, len(body), err)
		}
		switch {
		case IsSyntaxError(err):
			return fmt.Errorf("%s %s %s: response is not valid JSON (%d bytes): %w", vendor, req.Method, req.URL.Path, len(body), err)
		case own:
			return fmt.Errorf("%s %s %s: %w", vendor, req.Method, req.URL.Path, err) // says which part
		default:
			return fmt.Errorf("%s %s %s: response is JSON but not the expected shape (%d bytes): %w", vendor, req.Method, req.URL.Path, len(body), err)
		}
	}
	return nil
}

// IsSyntaxError reports whether err says the bytes are not JSON (or end
// too soon), rather than JSON of another shape.
func IsSyntaxError(err error) bool {
	var se *jsontext.SyntacticError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF)
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
