// Package citest decides what a test does when something outside the
// repository is missing: on a developer's machine it skips, under CI it
// fails, so a CI run never passes by skipping.
package citest

import (
	"os"
	"strconv"
	"testing"
)

// CI reports whether the tests run under CI: CI=true or CI=1 (any value
// strconv.ParseBool reads as true).
func CI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Missing ends the test because of what msg describes (what is missing and
// how to provide it): a failure under CI, a skip otherwise.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if CI() {
		t.Fatal(msg + " [CI is set, so this fails instead of skipping]")
		return
	}
	t.Skip(msg + " [skipped; under CI (CI=true or CI=1) this fails]")
}
