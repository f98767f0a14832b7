package segment

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// listClient answers every call with body.
func listClient(t *testing.T, body string) *client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &client{hc: srv.Client(), apiURL: srv.URL, token: "t", now: t0}
}

// A list page's envelope is read as before it was decoded in one pass:
// "data" in any case, the list key and "pagination" exactly, null as
// absent, duplicates merged; each wrong part named in the error.
func TestListEnvelope(t *testing.T) {
	for _, c := range []struct {
		body string
		n    int
		want string // error text; "" for none
	}{
		{`{"data":{"destinations":[{},"x",1,null,[],true],"pagination":{"next":null}}}`, 6, ""},
		{`{"DATA":{"destinations":[{}]},"other":{"destinations":[1,2]}}`, 1, ""},
		{`{"data":{"destinations":null}}`, 0, ""},
		{`{"data":{"destinations":[1]},"data":{"pagination":null}}`, 1, ""},
		{`{"data":{"destinations":[1],"pagination":{"NEXT":""}}}`, 1, ""},
		{`{"data":{"Destinations":[{}]}}`, 0, "segment GET /destinations: the answer has no data.destinations"},
		{`{"data":{}}`, 0, "segment GET /destinations: the answer has no data.destinations"},
		{`{}`, 0, "the answer has no data.destinations"},
		{`null`, 0, "the answer has no data.destinations"},
		{`{"data":null}`, 0, "the answer has no data.destinations"},
		{`{"data":{"destinations":[1]},"data":null}`, 0, "the answer has no data.destinations"},
		{`[]`, 0, "segment GET /destinations: the answer is an array, not an object"},
		{`{"data":"x"}`, 0, "segment GET /destinations: data is a string, not an object"},
		{`{"data":{"destinations":{"a":1}}}`, 0, "segment GET /destinations: data.destinations is not a list: it is an object, not an array"},
		{`{"data":{"destinations":[],"pagination":[]}}`, 0, "segment GET /destinations: data.pagination does not parse: json: …unmarshal JSON array into Go struct"},
		{`{"data":{"destinations":[],"pagination":{"next":5}}}`, 0, `data.pagination does not parse: json: …unmarshal JSON number into Go string within "/data/pagination/next"`},
		{`{"data":{"destinations":[1],"destinations":[2]}}`, 0, "segment GET /destinations: data.destinations appears twice in the answer"},
		{`{"data":{"destinations":[1]`, 0, "segment GET /destinations: response is not valid JSON (27 bytes)"},
		{`{"data":{"destinations":[1,}}`, 0, "response is not valid JSON"},
		{`{"data":{"destinations":[1]}} x`, 0, "response is not valid JSON"},
	} {
		c0 := listClient(t, c.body)
		n := 0
		err := pages(context.Background(), c0, "/destinations", "destinations", nil, "is not a list", func(*item) error {
			n++
			return nil
		})
		if c.want == "" && (err != nil || n != c.n) {
			t.Errorf("%s: %d items, %v; want %d", c.body, n, err, c.n)
		}
		if c.want != "" && (err == nil || !containsParts(err.Error(), c.want)) {
			t.Errorf("%s: %v, want an error containing %q", c.body, err, c.want)
		}
	}
}

// An item of the wrong shape is named with its place in the answer.
func TestListItemErrorSaysWhere(t *testing.T) {
	c := listClient(t, `{"data":{"sources":[{"id":"a","name":"A"},{"id":1}]}}`)
	_, err := c.sourceNames(context.Background())
	want := `segment GET /sources: data.sources is not a list of sources: json: …unmarshal JSON number into Go string within "/data/sources/1/id"`
	if err == nil || !containsParts(err.Error(), want) || !strings.HasPrefix(err.Error(), "segment GET /sources: ") {
		t.Errorf("got %v\nwant %s", err, want)
	}
	c = listClient(t, `{"data":{"users":[{"permissions":{"roleName":"x"}}]}}`)
	err = collectUsers(context.Background(), c, &provider.Scrape{})
	if err == nil || !containsParts(err.Error(), `data.users is not a list of users: json: …unmarshal JSON object into Go []struct`) ||
		!strings.Contains(err.Error(), `"/data/users/0/permissions"`) {
		t.Errorf("got %v", err)
	}
}

// Items are decoded into a reused value: one item's fields never leak
// into the next, and the latest snapshot kept is a copy.
func TestListItemsDoNotLeak(t *testing.T) {
	c := listClient(t, `{"data":{"sources":[{"id":"a","name":"A"},{"id":"b"}]}}`)
	names, err := c.sourceNames(context.Background())
	if err != nil || len(names) != 2 || names["a"] != "A" || names["b"] != "" {
		t.Errorf("got %v, %v", names, err)
	}
	c = listClient(t, `{"data":{"dailyPerSourceMTUUsage":[
		{"sourceId":"s1","identified":"5","anonymous":"6","anonymousIdentified":"7","neverIdentified":"8","timestamp":"2026-03-02T00:00:00Z"},
		{"sourceId":"s2","identified":"1","timestamp":"2026-03-01T00:00:00Z"},
		{"sourceId":"s1","identified":"9","timestamp":"2026-03-01T00:00:00Z"}]}}`)
	best, err := c.latest(context.Background(), sourceMTU, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 0)
	if err != nil {
		t.Fatal(err)
	}
	s1, err1 := mtuCounts(sourceMTU, best["s1"])
	_, err2 := mtuCounts(sourceMTU, best["s2"])
	if err1 != nil || s1[0] != 5 || s1[3] != 8 || err2 == nil || !strings.Contains(err2.Error(), "anonymous of 2026-03-01T00:00:00Z is missing") {
		t.Errorf("s1 %v %v; s2 %v", s1, err1, err2)
	}
}

// Counts decode from a JSON string or number; a bad count fails only
// when it is used.
func TestCountDecodes(t *testing.T) {
	var sn usageSnapshot
	err := provider.Unmarshal([]byte(`{"identified":"18446744073709551617","anonymous":12,"anonymousIdentified":null,"neverIdentified":"x1","apiCalls":"\u0037"}`), &sn)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		c    count
		v    float64
		want string
	}{
		{sn.Identified, 18446744073709551616, ""},
		{sn.Anonymous, 12, ""},
		{sn.AnonymousIdentified, 0, "is missing"},
		{sn.NeverIdentified, 0, `is "x1", not a whole number`},
		{sn.APICalls, 7, ""},
		{count{}, 0, "is missing"},
	} {
		v, err := c.c.value()
		if c.want == "" && (err != nil || v != c.v) || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, %v; want %v %q", c.c, v, err, c.v, c.want)
		}
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
