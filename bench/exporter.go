package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// bench is one benchmark session: the simulator, the exporter (a child
// process, or a running one at --exporter-url) and what is connected.
type bench struct {
	o      *options
	log    io.Writer // progress, for people watching
	dir    string
	sim    *vendorsim.Server
	simSrv *http.Server
	simURL string
	http   *http.Client

	bin     string // exporter binary (managed mode)
	addr    string // exporter listen address (managed mode)
	url     string // exporter base URL
	proc    *exporterProc
	vendors []string // vendors both the simulator and the exporter have
	plan    *plan
	notes   []string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

func (b *bench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, msg)
	b.logf("note: %s", msg)
}

func newBench(ctx context.Context, o *options, log io.Writer) (*bench, error) {
	dir, err := os.MkdirTemp("", "saas-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, log: log, dir: dir, http: &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute},
	}}
	if err := b.startSim(); err != nil {
		b.close()
		return nil, err
	}
	if o.ExporterURL != "" {
		b.url = strings.TrimRight(o.ExporterURL, "/")
		b.vendors = b.simVendors(o.Vendors)
		b.logf("using the exporter at %s; it must be configured for the simulator at %s:\n%s", b.url, b.simURL, b.sim.ConfigSnippet(b.simURL))
	} else {
		if err := b.buildExporter(ctx); err != nil {
			b.close()
			return nil, err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.close()
			return nil, err
		}
		b.addr = l.Addr().String()
		l.Close()
		b.url = "http://" + b.addr
		if err := b.startExporter(ctx, o.MinInterval); err != nil {
			b.close()
			return nil, err
		}
	}
	if err := b.sim.SetTwilioConnectApp(b.url+"/connect/twilio/callback", b.url+"/connect/twilio/deauthorize"); err != nil {
		b.close()
		return nil, err
	}
	if err := b.probeVendors(ctx); err != nil {
		b.close()
		return nil, err
	}
	var without []string
	b.plan, without = newPlan(b.vendors)
	for _, v := range without {
		b.note("vendor %s left out: the simulator has no synthetic accounts for it", v)
	}
	if len(b.plan.vendors) == 0 {
		b.close()
		return nil, fmt.Errorf("no vendor left to benchmark: none of %s has synthetic accounts in the simulator", strings.Join(b.vendors, ","))
	}
	b.vendors = b.plan.vendors
	if o.Latency > 0 {
		for _, v := range b.vendors {
			b.sim.SetFault(v, vendorsim.Fault{Latency: o.Latency})
		}
	}
	return b, nil
}

func (b *bench) startSim() error {
	b.sim = vendorsim.New(vendorsim.Options{PageSize: b.o.PageSize})
	l, err := net.Listen("tcp", b.o.SimListen)
	if err != nil {
		return fmt.Errorf("vendor simulator: %w (change --sim-listen)", err)
	}
	b.simURL = "http://" + l.Addr().String()
	b.simSrv = &http.Server{Handler: b.sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go b.simSrv.Serve(l)
	return nil
}

// simVendors keeps the requested vendors the simulator serves.
func (b *bench) simVendors(want []string) []string {
	have := map[string]bool{}
	for _, vi := range b.sim.Vendors() {
		have[vi.Vendor] = true
	}
	var out []string
	for _, v := range want {
		if have[v] {
			out = append(out, v)
		} else {
			b.note("vendor %s left out: the simulator does not serve it", v)
		}
	}
	return out
}

func (b *bench) close() {
	if b.proc != nil {
		b.proc.stop()
	}
	if b.sim != nil {
		b.sim.Close()
	}
	if b.simSrv != nil {
		b.simSrv.Close()
	}
	if b.dir != "" {
		if b.o.KeepDir {
			b.logf("kept %s", b.dir)
		} else {
			os.RemoveAll(b.dir)
		}
	}
}

// repoRoot finds the saas_exporter module from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/saas-exporter/saas_exporter\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the saas_exporter repository: run from it, or pass --exporter-bin or --exporter-url")
		}
		dir = parent
	}
}

func (b *bench) buildExporter(ctx context.Context) error {
	if b.o.ExporterBin != "" {
		b.bin = b.o.ExporterBin
		return nil
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	b.bin = filepath.Join(b.dir, "saas_exporter")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/saas_exporter")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("building ./cmd/saas_exporter: %v\n%s", err, out)
	}
	b.logf("built the exporter in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// exporterProc is the exporter child process.
type exporterProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *exporterProc) pid() int { return p.cmd.Process.Pid }

func (p *exporterProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (the exporter flushes status and closes its store)
// and kills it if it does not stop within 40 s.
func (p *exporterProc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *exporterProc) logTail(n int) string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// config is the exporter configuration for the simulator.
func (b *bench) config(minInterval time.Duration, vendors []string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(b.o.AdminPassword), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "external_url: %s\ndata_dir: %s\nadmins:\n  %s: %q\n", b.url, filepath.Join(b.dir, "data"), b.o.AdminUser, hash)
	fmt.Fprintf(&s, "scrape:\n  timeout: %s\n  min_interval: %s\n", b.o.Timeout, minInterval)
	if b.o.Concurrency > 0 {
		fmt.Fprintf(&s, "  concurrency: %d\n", b.o.Concurrency)
	}
	s.WriteString("vendors:\n")
	for _, vi := range b.sim.Vendors() {
		if slices.Contains(vendors, vi.Vendor) && vi.Config != nil {
			s.WriteString(strings.TrimRight(vi.Config(b.simURL), "\n") + "\n")
		}
	}
	return s.String(), nil
}

var unknownVendorRE = regexp.MustCompile(`unknown vendor \\?"([^"\\]+)\\?"`)

// startExporter starts the exporter with min_interval. The first start
// finds out which vendors the binary supports: a config section for a
// vendor it does not know is an error naming the vendor, which is then
// left out.
func (b *bench) startExporter(ctx context.Context, minInterval time.Duration) error {
	if b.proc != nil {
		b.proc.stop()
		b.proc = nil
	}
	if b.vendors == nil {
		b.vendors = b.simVendors(b.o.Vendors)
		for len(b.vendors) > 0 {
			err := b.spawn(ctx, minInterval)
			if err == nil {
				return nil
			}
			msg := err.Error()
			dropped := false
			for _, m := range unknownVendorRE.FindAllStringSubmatch(msg, -1) {
				if i := slices.Index(b.vendors, m[1]); i >= 0 {
					b.vendors = slices.Delete(b.vendors, i, i+1)
					b.note("vendor %s left out: this exporter build has no provider for it", m[1])
					dropped = true
				}
			}
			for _, v := range slices.Clone(b.vendors) {
				if !dropped && strings.Contains(msg, "vendors."+v+":") {
					b.vendors = slices.DeleteFunc(b.vendors, func(s string) bool { return s == v })
					b.note("vendor %s left out: the exporter refused the simulator's config section for it", v)
					dropped = true
				}
			}
			if !dropped {
				return err
			}
		}
		return errors.New("no vendor left to benchmark: the exporter supports none of --vendors")
	}
	return b.spawn(ctx, minInterval)
}

func (b *bench) spawn(ctx context.Context, minInterval time.Duration) error {
	cfg, err := b.config(minInterval, b.vendors)
	if err != nil {
		return err
	}
	cfgFile := filepath.Join(b.dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	logFile := filepath.Join(b.dir, "exporter.log")
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "--config.file="+cfgFile, "--web.listen-address="+b.addr, "--log.level=warn")
	cmd.Env = append(os.Environ(), b.o.ExporterEnv...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("starting the exporter: %w", err)
	}
	p := &exporterProc{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); lf.Close(); close(p.done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if p.exited() {
			return fmt.Errorf("the exporter exited (%v) before it was ready:\n%s", p.err, p.logTail(20))
		}
		resp, err := b.http.Get(b.url + "/-/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				b.proc = p
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return fmt.Errorf("the exporter was not ready after 2 minutes:\n%s", p.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// memory is the exporter's resident memory, as it reports it and as the
// kernel does (bytes; 0 when unknown).
type memory struct {
	ProcessRSS float64 // process_resident_memory_bytes
	VmRSS      int64
	VmHWM      int64
}

// procStatus reads VmRSS and VmHWM of a process from /proc.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, sc.Err()
}

// cpuTime is the CPU (user + system) a process used so far; pid 0 is this
// process (the simulator and the driver).
func cpuTime(pid int) (time.Duration, bool) {
	if pid == 0 {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0, false
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command (in parentheses, which may hold spaces):
	// utime and stime are the 12th and 13th, in clock ticks (USER_HZ 100).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * 10 * time.Millisecond, true
}

// cpu is the CPU used so far by the exporter (0 when not started by the
// bench) and by this process.
func (b *bench) cpu() (exporter, self time.Duration) {
	if b.proc != nil {
		exporter, _ = cpuTime(b.proc.pid())
	}
	self, _ = cpuTime(0)
	return exporter, self
}

// memoryNow reads the exporter's memory; processRSS comes from a scrape.
func (b *bench) memoryNow(processRSS float64) memory {
	m := memory{ProcessRSS: processRSS}
	if b.proc != nil {
		m.VmRSS, m.VmHWM, _ = procStatus(b.proc.pid())
	}
	return m
}
