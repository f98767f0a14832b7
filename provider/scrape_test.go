package provider

import (
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
)

func TestLabelIsBounded(t *testing.T) {
	long := strings.Repeat("é", 30_000) // 60 KB, two bytes a rune
	other := long + "x"
	for _, v := range []string{long, other, strings.Repeat("a", MaxLabelLen+1), "bad\xffutf8"} {
		got := Label(v)
		if len(got) > MaxLabelLen || !utf8.ValidString(got) {
			t.Errorf("Label(%d bytes) = %d bytes, valid UTF-8 %v", len(v), len(got), utf8.ValidString(got))
		}
	}
	if Label(long) == Label(other) {
		t.Error("two long values with the same start became one label value")
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
		if len(l.GetValue()) > MaxLabelLen {
			t.Errorf("label %s is %d bytes", l.GetName(), len(l.GetValue()))
		}
	}
}
