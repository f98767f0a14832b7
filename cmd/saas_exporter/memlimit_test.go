package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot lays out files (path → content) under a temporary root.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		f := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestContainerMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64 // 0: none
	}{
		{"v2 namespaced", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "268435456\n"}, 256 * mib},
		{"v2 unlimited", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"}, 0},
		{"v2 a parent's is lower", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "536870912\n",
			"sys/fs/cgroup/kubepods/memory.max":         "1073741824\n",
		}, 512 * mib},
		{"v1", map[string]string{
			"proc/self/cgroup": "12:pids:/x\n4:memory:/docker/abc\n1:name=systemd:/x\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "402653184\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
		}, 384 * mib},
		{"v1 unlimited (this machine's shape)", map[string]string{
			"proc/self/cgroup":                           "4:memory:/process_api/e3\n0::/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0},
		{"v1 beside v2: the memory controller's", map[string]string{
			"proc/self/cgroup":                             "0::/\n3:cpu,memory:/m\n",
			"sys/fs/cgroup/memory.max":                     "100\n",
			"sys/fs/cgroup/memory/m/memory.limit_in_bytes": "209715200\n",
		}, 200 * mib},
		{"garbage", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "lots\n"}, 0},
		{"no cgroup file", map[string]string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := containerMemoryLimit(fakeRoot(t, tc.files))
			if ok != (tc.want != 0) || got != tc.want && tc.want != 0 {
				t.Errorf("containerMemoryLimit = %d, %v; want %d", got, ok, tc.want)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	root := fakeRoot(t, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "268435456\n"})
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	var got []int64
	set := func(n int64) int64 { got = append(got, n); return 0 }

	setMemoryLimit(logger, root, func(string) string { return "" }, set)
	size := float64(268435456)
	if want := int64(size * limitShare); len(got) != 1 || got[0] != want {
		t.Errorf("soft limit %v, want [%d] (90%% of 256 MiB)", got, want)
	}
	if !strings.Contains(log.String(), "soft_limit_mib=230") {
		t.Errorf("log does not say the limit: %s", log.String())
	}

	// GOMEMLIMIT in the environment wins, "off" included.
	got = nil
	setMemoryLimit(logger, root, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "off"
		}
		return ""
	}, set)
	if len(got) != 0 {
		t.Errorf("GOMEMLIMIT=off was overridden: %v", got)
	}
	// No container limit: nothing is set.
	setMemoryLimit(logger, fakeRoot(t, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"}), func(string) string { return "" }, set)
	if len(got) != 0 {
		t.Errorf("a limit was set without a container limit: %v", got)
	}
}
