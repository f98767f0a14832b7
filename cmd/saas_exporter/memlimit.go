package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A cold scrape of thousands of connections is a burst: Go's GC lets the
// heap grow to twice what is live (GOGC=100) and beyond while it marks, so
// a container sized for the exporter's steady memory is OOM-killed by the
// burst's peak. Go (1.26) sizes GOMAXPROCS from the container's CPU limit
// but not its memory: the exporter gives the GC a soft limit of
// limitShare of the container's memory limit itself, so the GC works
// harder near it instead. GOMEMLIMIT in the environment wins (off: none).

// limitShare is the part of the container's limit given to Go; the rest
// is for what the GC does not manage (the binary, bbolt's mapped file).
const limitShare = 0.9

// setMemoryLimit applies the soft limit from the cgroup files under root
// ("/" outside tests) unless GOMEMLIMIT is set, and says what it did.
func setMemoryLimit(log *slog.Logger, root string, getenv func(string) string, set func(int64) int64) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	limit, ok := containerMemoryLimit(root)
	if !ok {
		return
	}
	soft := int64(float64(limit) * limitShare)
	set(soft)
	log.Info("soft memory limit set from the container's memory limit (set GOMEMLIMIT to choose another, or off for none)",
		"container_limit_mib", limit>>20, "soft_limit_mib", soft>>20)
}

// containerMemoryLimit reads the memory limit of this process's cgroup:
// the lowest of its own and its ancestors' (cgroup v1's memory controller,
// else v2's unified hierarchy); false if none is set.
func containerMemoryLimit(root string) (int64, bool) {
	self, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	var v1, v2 string
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case containsController(parts[1], "memory"):
			v1 = parts[2]
		}
	}
	switch {
	case v1 != "":
		return lowestLimit(filepath.Join(root, "sys/fs/cgroup/memory"), v1, "memory.limit_in_bytes")
	case v2 != "":
		return lowestLimit(filepath.Join(root, "sys/fs/cgroup"), v2, "memory.max")
	}
	return 0, false
}

func containsController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// lowestLimit walks from the cgroup at path up to the mount's root and
// returns the lowest limit set. A path outside the mount (another cgroup
// namespace) reads only the root.
func lowestLimit(mount, path, file string) (int64, bool) {
	lowest, found := int64(math.MaxInt64), false
	for p := filepath.Clean("/" + path); ; p = filepath.Dir(p) {
		if n, ok := readLimit(filepath.Join(mount, p, file)); ok && n < lowest {
			lowest, found = n, true
		}
		if p == "/" {
			return lowest, found
		}
	}
}

// readLimit parses a limit file: a number of bytes, or "max" (v2) or a
// number near the largest int64 (v1) for none.
func readLimit(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
