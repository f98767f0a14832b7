package provider

import (
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
	if got := Label(long); got != strings.Repeat("é", MaxLabelLen-1)+"…" {
		t.Errorf("cut value: %q", got)
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
