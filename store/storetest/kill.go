package storetest

import (
	"bufio"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Kill runs cmd, a child that writes connections and prints "PUT id" after
// each acknowledged create and "<update> id" after each acknowledged
// secret update (secret "v1-id", then "v2-id"). After want creates it
// kills the child with SIGKILL at a random moment, and records in acked
// the secret each connection must at least have (check with Acked).
func Kill(t *testing.T, cmd *exec.Cmd, update string, want int, acked map[string]string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	n := 0
	for n < want && sc.Scan() {
		kind, id, ok := strings.Cut(sc.Text(), " ")
		switch {
		case !ok:
			continue // not one of ours
		case kind == "PUT":
			acked[id] = "v1-" + id
			n++
		case kind == update:
			acked[id] = "v2-" + id
		}
	}
	// A little jitter so the kill lands anywhere in a write.
	time.Sleep(rand.N(2 * time.Millisecond))
	cmd.Process.Kill()
	cmd.Wait()
	if n < want {
		t.Fatalf("child stopped after %d writes: %s", n, stderr.String())
	}
}

// Acked reports whether a stored secret is what an acknowledged write
// promised: an update may have landed without its acknowledgement, never
// an older value.
func Acked(got, want, id string) bool {
	return got == want || (want == "v1-"+id && got == "v2-"+id)
}
