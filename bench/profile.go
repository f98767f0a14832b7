package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

// profileCold starts CPU profiles for the cold scrape of n connections
// when --profile-cold is set: perf for the exporter (another process,
// possibly another build) and runtime/pprof for this process (the
// simulator and the driver). The returned func stops both.
//
//	perf report -i DIR/perf-N.data --no-children --sort symbol
//	go tool pprof -top DIR/sim-N.pprof
func (b *bench) profileCold(n int) (stop func(), err error) {
	dir := b.o.ProfileCold
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--profile-cold: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("sim-%d.pprof", n)))
	if err != nil {
		return nil, fmt.Errorf("--profile-cold: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--profile-cold: %w", err)
	}
	var perf *exec.Cmd
	if b.proc != nil {
		perf = exec.Command("perf", "record", "-q", "-F", "499", "-g", "-p", strconv.Itoa(b.proc.pid()),
			"-o", filepath.Join(dir, fmt.Sprintf("perf-%d.data", n)))
		perf.Stderr = os.Stderr
		if err := perf.Start(); err != nil {
			b.note("--profile-cold: perf did not start (%v); only the simulator is profiled", err)
			perf = nil
		} else {
			time.Sleep(300 * time.Millisecond) // perf attaches before the scrape starts
		}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if perf != nil {
			perf.Process.Signal(syscall.SIGINT)
			perf.Wait()
		}
	}, nil
}
