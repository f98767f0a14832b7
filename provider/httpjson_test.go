package provider

import (
	"bytes"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// keyed holds the keys MayHaveKey is asked about, as a vendor's error
// parser declares them.
type keyed struct {
	Errors jsontext.Value `json:"errors"`
	Code   jsontext.Value `json:"code"`
	Key    jsontext.Value `json:"key"`
}

type keyedV1 struct {
	Errors jsonv1.RawMessage `json:"errors"`
	Code   jsonv1.RawMessage `json:"code"`
	Key    jsonv1.RawMessage `json:"key"`
}

func (k keyed) has(key string) bool {
	return map[string]jsontext.Value{"errors": k.Errors, "code": k.Code, "key": k.Key}[key] != nil
}

func (k keyedV1) has(key string) bool {
	return map[string]jsonv1.RawMessage{"errors": k.Errors, "code": k.Code, "key": k.Key}[key] != nil
}

// checkMayHaveKey fails t if Unmarshal, or encoding/json v1, finds key in
// body where MayHaveKey says it cannot be.
func checkMayHaveKey(t *testing.T, body []byte, key string) {
	t.Helper()
	if MayHaveKey(body, key) {
		return
	}
	var k keyed
	if Unmarshal(body, &k) == nil && k.has(key) {
		t.Errorf("%q: Unmarshal finds %s, MayHaveKey says no", body, key)
	}
	var k1 keyedV1
	if jsonv1.Unmarshal(body, &k1) == nil && k1.has(key) {
		t.Errorf("%q: encoding/json v1 finds %s, MayHaveKey says no", body, key)
	}
}

// MayHaveKey never says no where Unmarshal would find the key, and says
// no to good answers without it (so they are not decoded twice).
func TestMayHaveKey(t *testing.T) {
	twilioPage := `{"first_page_uri":"/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Usage/Records/ThisMonth.json?PageSize=1000\u0026Page=0","next_page_uri":null,"usage_records":[{"category":"sms","price":"1.5","price_unit":"usd"}]}`
	for _, c := range []struct {
		body, key string
		want      bool
	}{
		{`{"errors":[{"message":"x"}]}`, "errors", true},
		{`{"ERRORS":[{"message":"x"}]}`, "errors", true}, // names match in any case
		{` { "Errors" : [] }`, "errors", true},
		{`{"data":{"errors_total":1,"x":"errors"}}`, "errors", true}, // a value: a maybe
		{`{"data":{"errors_total":1}}`, "errors", false},
		{`{"\u0065rrors":[1]}`, "errors", true}, // an escape: a maybe
		{`{"errorſ":[1]}`, "errors", true},      // ſ folds to s
		{`{"\u212Aey":1}`, "key", true},         // the Kelvin sign folds to k
		{`{"result":[1,2,3]}`, "errors", false},
		{`not json`, "errors", false},
		{``, "errors", false},
		{`"errors`, "errors", false},
		// Escapes and non-ASCII text too long to decode to the key
		// (Twilio's page URIs, Segment's source names) are a certain no.
		{twilioPage, "code", false},
		{`{"name":"Café de l'Opéra – the source of the web shop's checkout"}`, "code", false},
		{`{"name":"Café"}`, "code", true},    // 4 characters: a maybe
		{`{"name":"Café"}`, "errors", false}, // fewer than 6 characters
	} {
		if got := MayHaveKey([]byte(c.body), c.key); got != c.want {
			t.Errorf("MayHaveKey(%q, %s) = %v, want %v", c.body, c.key, got, c.want)
		}
		checkMayHaveKey(t, []byte(c.body), c.key)
	}
}

// FuzzMayHaveKey: whenever Unmarshal (or encoding/json v1) finds a key in
// a body, MayHaveKey says it may be there.
func FuzzMayHaveKey(f *testing.F) {
	for _, b := range []string{`{"errors":[1]}`, `{"ERRORS":[]}`, `{"a":{"errors":1}}`, `{"\u0065rrors":[1]}`, `{"x":"y"}`,
		`{"\u212Aey":1}`, `{"errorſ":1}`, `{"code":1,"uri":"/a?b=1\u0026c=2"}`, "{\"co\xffde\":1}", `{"\ud83d\ude00":1}`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, key := range []string{"errors", "code", "key"} {
			checkMayHaveKey(t, body, key)
		}
	})
}

// shape has a field of each kind the vendors decode into.
type shape struct {
	Name     string             `json:"name"`
	OwnerSid string             `json:"owner_account_sid"`
	Count    float64            `json:"count"`
	Ptr      *float64           `json:"ptr"`
	Any      any                `json:"any"`
	List     []string           `json:"list"`
	Map      map[string]float64 `json:"map"`
	Nested   struct {
		A int `json:"a"`
	} `json:"nested"`
	Flag bool `json:"flag"`
}

// decodeBoth decodes body with Unmarshal and with encoding/json v1.
func decodeBoth(body []byte) (v2, v1 shape, err2, err1 error) {
	err2 = Unmarshal(body, &v2)
	err1 = jsonv1.Unmarshal(body, &v1)
	return
}

// Unmarshal keeps what encoding/json v1 did that vendors' answers rely
// on: names in any case (but '_' is not ignored), duplicate names (the
// last wins), invalid UTF-8 (as U+FFFD), null as zero, numbers in any as
// float64, numbers too large for the field as errors.
func TestUnmarshalKeepsV1Semantics(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		body string
		want shape
	}{
		{`{"NAME":"x","Owner_Account_SID":"AC1"}`, shape{Name: "x", OwnerSid: "AC1"}},
		{`{"ownerAccountSid":"AC1"}`, shape{}}, // '_' counts, as in v1
		{`{"name":"a","name":"b"}`, shape{Name: "b"}},
		{`{"name":"a","Name":"b","list":["x"],"list":["y"]}`, shape{Name: "b", List: []string{"y"}}},
		{"{\"name\":\"a\xffb\"}", shape{Name: "a\uFFFDb"}},
		{`{"name":"\ud800"}`, shape{Name: "\uFFFD"}},
		{`{"name":null,"count":null,"ptr":null,"any":null,"list":null,"map":null,"nested":null,"flag":null}`, shape{}},
		{`{"any":12,"ptr":0.5}`, shape{Any: 12.0, Ptr: f(0.5)}},
		{`{"any":{"a":[1,"x",true,null]}}`, shape{Any: map[string]any{"a": []any{1.0, "x", true, nil}}}},
		{`{"count":123456789012345678901234567890}`, shape{Count: 1.2345678901234568e29}},
		{`{"count":1.7976931348623157e308}`, shape{Count: math.MaxFloat64}},
		{`{"map":{"a":1,"a":2}}`, shape{Map: map[string]float64{"a": 2}}},
		{`{"other":{"deep":[1,{"x":null}]},"nested":{"A":3}}`, shape{Nested: struct {
			A int `json:"a"`
		}{3}}},
	} {
		v2, v1, err2, err1 := decodeBoth([]byte(c.body))
		if err2 != nil || !reflect.DeepEqual(v2, c.want) {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", c.body, v2, err2, c.want)
		}
		if err1 != nil || !reflect.DeepEqual(v1, v2) {
			t.Errorf("%s: encoding/json v1 gives %+v, %v; Unmarshal %+v", c.body, v1, err1, v2)
		}
	}
}

// Input both versions reject is rejected with an error that says where.
func TestUnmarshalErrorsSayWhere(t *testing.T) {
	for body, want := range map[string]string{
		`{"count":1e400}`:                       `"/count"`,
		`{"ptr":-1e400}`:                        `"/ptr"`,
		`{"count":"12"}`:                        `JSON string into Go float64 within "/count"`,
		`{"nested":{"a":1.5}}`:                  `"/nested/a"`,
		`{"nested":{"a":99999999999999999999}}`: `"/nested/a"`,
		`{"list":[1]}`:                          `"/list/0"`,
		`{"name":"x"} x`:                        "invalid character 'x' after top-level value",
		`{"name":"x"}{}`:                        "after top-level value",
		`{"name":`:                              "unexpected EOF",
		`[1,2]`:                                 "JSON array into Go provider.shape",
	} {
		_, _, err2, err1 := decodeBoth([]byte(body))
		if err1 == nil {
			t.Errorf("%s: encoding/json v1 accepts it", body)
		}
		if err2 == nil || !strings.Contains(err2.Error(), want) {
			t.Errorf("Unmarshal(%s) = %v, want an error containing %s", body, err2, want)
		}
	}
}

// FuzzUnmarshalMatchesV1: Unmarshal accepts what encoding/json v1
// accepted, and decodes it to the same value.
func FuzzUnmarshalMatchesV1(f *testing.F) {
	for _, b := range []string{`{"name":"x","count":1}`, `{"NAME":"a","name":"b"}`, `{"any":{"a":[1,"x",null]}}`, "{\"name\":\"\xff\"}",
		`{"ptr":null,"map":{"a":1}}`, `{"nested":{"a":-0}}`, `{"list":["a","b"],"flag":true}`, `{"count":1e400}`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v2, v1, err2, err1 := decodeBoth(body)
		if err1 != nil {
			return
		}
		if err2 != nil {
			t.Fatalf("%q: v1 decodes it, Unmarshal says %v", body, err2)
		}
		if !reflect.DeepEqual(v1, v2) {
			t.Fatalf("%q: v1 gives %+v, Unmarshal %+v", body, v1, v2)
		}
	})
}

// DoJSON's errors say whether the answer was not JSON, not the JSON
// expected, or not JSON at all (another media type).
func TestDoJSONSaysWhatIsWrong(t *testing.T) {
	var body, ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	oddData := errors.New("data.items is odd")
	for _, c := range []struct {
		ctype, body string
		out         any
		want        string
	}{
		{"application/json", `{"count":"x"}`, new(shape), `test GET /p: response is JSON but not the expected shape (13 bytes): json: …unmarshal JSON string into Go float64 within "/count"`},
		{"application/json", `{"count":`, new(shape), "test GET /p: response is not valid JSON (9 bytes)"},
		{"application/vnd.x.v1+json", `{"count":`, new(shape), "response is not valid JSON"},
		{"text/html", `<html>`, new(shape), `test GET /p: expected JSON, got "text/html" (6 bytes)`},
		{"application/json", `{}`, DecodeFunc(func(dec *jsontext.Decoder) error { dec.SkipValue(); return oddData }), "test GET /p: data.items is odd"},
		{"application/json", `{} {}`, DecodeFunc(func(dec *jsontext.Decoder) error { return dec.SkipValue() }), "response is not valid JSON (5 bytes): jsontext: more than one JSON value"},
		{"application/json", `{"a":`, DecodeFunc(func(dec *jsontext.Decoder) error { return dec.SkipValue() }), "response is not valid JSON (5 bytes)"},
	} {
		body, ctype = c.body, c.ctype
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/p", nil)
		err := DoJSON(srv.Client(), req, "test", nil, c.out)
		if err == nil || !containsParts(err.Error(), c.want) {
			t.Errorf("%s %s: got %v, want %q", c.ctype, c.body, err, c.want)
		}
		if errors.Is(err, oddData) != (c.want == "test GET /p: data.items is odd") {
			t.Errorf("%s: a DecodeFunc's error is wrapped: %v", c.body, err)
		}
	}
}

// What a DecodeFunc decodes with UnmarshalDecode, and raw values, outlive
// DoJSON's reused buffers.
func TestDecodeFuncValuesOutliveTheBuffer(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		fmt.Fprintf(w, `{"name":"answer-%d","raw":{"k":"v%d"}}`, n, n)
	}))
	defer srv.Close()
	type answer struct {
		Name string         `json:"name"`
		Raw  jsontext.Value `json:"raw"`
	}
	var got []answer
	for range 3 {
		var a answer
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err := DoJSON(srv.Client(), req, "test", nil, DecodeFunc(func(dec *jsontext.Decoder) error {
			return UnmarshalDecode(dec, &a)
		})); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	for i, a := range got {
		k := i + 1
		if a.Name != fmt.Sprintf("answer-%d", k) || !bytes.Equal(a.Raw, fmt.Appendf(nil, `{"k":"v%d"}`, k)) {
			t.Errorf("answer %d changed after later reads: %+v", k, a)
		}
	}
}

// A DecodeFunc decodes with the options of Unmarshal.
func TestDecodeJSONUsesTheOptions(t *testing.T) {
	var s shape
	err := DecodeJSON([]byte("{\"NAME\":\"a\xff\",\"name\":\"b\",\"Owner_Account_Sid\":\"AC1\"}"), func(dec *jsontext.Decoder) error {
		return UnmarshalDecode(dec, &s)
	})
	if err != nil || s.Name != "b" || s.OwnerSid != "AC1" {
		t.Errorf("got %+v, %v", s, err)
	}
}

// containsParts reports whether s holds each part of want split at "…",
// which stands where encoding/json/v2 writes "cannot" or "unable to"
// (it picks one at random per process).
func containsParts(s, want string) bool {
	for _, p := range strings.Split(want, "…") {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
