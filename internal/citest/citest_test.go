package citest

import "testing"

func TestCI(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "1": true, "TRUE": true, "": false, "0": false, "false": false, "yes-please": false} {
		t.Setenv("CI", v)
		if got := CI(); got != want {
			t.Errorf("CI=%q: CI() = %v, want %v", v, got, want)
		}
	}
}

// fakeTB records how Missing ended the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Fatal(args ...any) { f.fatal = args[0].(string) }
func (f *fakeTB) Skip(args ...any)  { f.skip = args[0].(string) }

func TestMissing(t *testing.T) {
	for _, ci := range []string{"true", "1"} {
		t.Setenv("CI", ci)
		f := &fakeTB{}
		Missing(f, "promtool not found")
		if f.fatal == "" || f.skip != "" {
			t.Errorf("CI=%s: fatal %q, skip %q; want a failure", ci, f.fatal, f.skip)
		}
	}
	t.Setenv("CI", "")
	f := &fakeTB{}
	Missing(f, "promtool not found")
	if f.skip == "" || f.fatal != "" {
		t.Errorf("no CI: fatal %q, skip %q; want a skip", f.fatal, f.skip)
	}
}
