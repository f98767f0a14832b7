package provider

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
)

func TestLabelIsBounded(t *testing.T) {
	long := strings.Repeat("é", 30_000) // 60 KB, two bytes a rune
	for _, v := range []string{long, strings.Repeat("a", MaxLabelLen+1), "bad\xffutf8"} {
		got := Label(v)
		if utf8.RuneCountInString(got) > MaxLabelLen || !utf8.ValidString(got) {
			t.Errorf("Label(%d bytes) = %d characters, valid UTF-8 %v", len(v), utf8.RuneCountInString(got), utf8.ValidString(got))
		}
	}
	if got := Label(long); !strings.HasPrefix(got, strings.Repeat("é", MaxLabelLen-9)+"…") || utf8.RuneCountInString(got) != MaxLabelLen || Label(got) != got {
		t.Errorf("cut value: %q", got)
	}
	// Two long values alike in their first MaxLabelLen characters stay
	// apart (they were one series, emitted twice: a failed collection).
	a, b := strings.Repeat("x", 200)+"-eu", strings.Repeat("x", 200)+"-us"
	if Label(a) == Label(b) || Label(a) != Label(a) {
		t.Errorf("Label(a) = %q, Label(b) = %q: want distinct, each stable", Label(a), Label(b))
	}
	exact := strings.Repeat("a", MaxLabelLen)
	if Label(exact) != exact || Label("Acme Inc") != "Acme Inc" {
		t.Error("a short value was changed")
	}
}

// Every label a provider emits through Scrape is bounded.
func TestScrapeBoundsLabels(t *testing.T) {
	s := &Scrape{Conn: Connection{Name: "prod"}}
	d := NewDesc("test_info", "Test.", "type")
	s.Gauge(d, 1, strings.Repeat("x", 60_000))
	ms, _, _ := s.Result()
	var pb dto.Metric
	if err := ms[0].Write(&pb); err != nil {
		t.Fatal(err)
	}
	for _, l := range pb.GetLabel() {
		if utf8.RuneCountInString(l.GetValue()) > MaxLabelLen {
			t.Errorf("label %s is %d characters", l.GetName(), utf8.RuneCountInString(l.GetValue()))
		}
	}
}

// DoJSON reuses its read buffers: nothing it decoded may change when the
// next answer is read into the same memory.
func TestDoJSONDecodedValuesOutliveTheBuffer(t *testing.T) {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		fmt.Fprintf(w, `{"name":"answer-%d","raw":{"k":"v%d"},"list":["a%d"]}`, n, n, n)
	}))
	defer srv.Close()
	type answer struct {
		Name string          `json:"name"`
		Raw  json.RawMessage `json:"raw"`
		List []string        `json:"list"`
	}
	var got []answer
	for range 3 {
		var a answer
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err := DoJSON(srv.Client(), req, "test", nil, &a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	for i, a := range got {
		k := i + 1
		if a.Name != fmt.Sprintf("answer-%d", k) || string(a.Raw) != fmt.Sprintf(`{"k":"v%d"}`, k) || a.List[0] != fmt.Sprintf("a%d", k) {
			t.Errorf("answer %d changed after later reads: %+v", k, a)
		}
	}
}
