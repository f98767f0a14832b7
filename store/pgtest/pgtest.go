// Package pgtest starts throw-away PostgreSQL servers for tests.
//
// Start gives a test a fresh database on a server shared by the whole test
// binary (started on first use), so a package pays for one initdb. NewServer
// starts a server of its own for a test that stops and restarts it.
//
// The server binaries come from the postgresql package
// (/usr/lib/postgresql/*/bin). Without them a test is skipped, or fails when
// CI=true, since CI must not skip the PostgreSQL tests silently.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saas-exporter/saas_exporter/internal/citest"
)

// Superuser is the role initdb creates; it needs no password (trust auth
// on loopback only).
const Superuser = "postgres"

var (
	sharedOnce   sync.Once
	sharedServer *Server
	sharedErr    error
)

// Start returns the DSN of a new, empty database on the shared server, and
// a function that drops it. The database is also dropped when t ends.
func Start(t testing.TB) (dsn string, stop func()) {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Shared returns the server shared by every test of this binary, starting
// it on first use. It runs until the test binary exits; a test must not
// stop it (use NewServer for that).
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := binaries(t)
	sharedOnce.Do(func() { sharedServer, sharedErr = start(bin) })
	if sharedErr != nil {
		t.Fatalf("pgtest: starting the shared PostgreSQL server: %v", sharedErr)
	}
	return sharedServer
}

// NewServer starts a server for t alone, closed (and its files removed)
// when t ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := start(binaries(t))
	if err != nil {
		t.Fatalf("pgtest: starting a PostgreSQL server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Server is one throw-away PostgreSQL server listening on 127.0.0.1.
type Server struct {
	port int
	bin  string
	base string // everything lives here: data, socket dir, log
	data string
	log  string
	cred *syscall.Credential // the postgres OS user, when running as root
	env  []string

	guard   *exec.Cmd
	guardIn io.WriteCloser

	mu     sync.Mutex // serialises stop/start
	closed bool
	dbSeq  atomic.Int64
}

// Port returns the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.port }

// DSN returns the URL of database on this server, as the superuser.
func (s *Server) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// NewDatabase creates an empty database and returns its DSN and a function
// that drops it (also called when t ends; calling it twice is harmless).
func (s *Server) NewDatabase(t testing.TB) (dsn string, drop func()) {
	t.Helper()
	name := fmt.Sprintf("t%03d_%s", s.dbSeq.Add(1), sanitize(t.Name()))
	if len(name) > 63 { // PostgreSQL's identifier limit
		name = name[:63]
	}
	if err := s.admin(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		return err
	}); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	drop = sync.OnceFunc(func() {
		// FORCE ends sessions a test left open; a failure only leaks a
		// database in a throw-away server, so it is logged, not fatal.
		if s.isClosed() {
			return // the whole server is gone
		}
		err := s.admin(func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			return err
		})
		if err != nil {
			t.Logf("pgtest: dropping database %s: %v", name, err)
		}
	})
	t.Cleanup(drop)
	return s.DSN(name), drop
}

// admin runs fn on a short-lived superuser connection to the postgres database.
func (s *Server) admin(fn func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return fn(ctx, c)
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// StopServer shuts the server down (fast mode: open sessions are ended),
// keeping its data directory and port for StartServer.
func (s *Server) StopServer(t testing.TB) {
	t.Helper()
	s.stop(t, "fast")
}

func (s *Server) stop(t testing.TB, mode string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pgctl("stop", "-m", mode); err != nil {
		t.Fatalf("pgtest: stopping the server (%s): %v", mode, err)
	}
}

// StartServer starts a stopped server again on the same port and data.
func (s *Server) StartServer(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pgctl("start"); err != nil {
		t.Fatalf("pgtest: starting the server again: %v", err)
	}
}

// Restart stops and starts the server.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.StopServer(t)
	s.StartServer(t)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the server and removes its files. The guard process does the
// work, as it would if the test binary died.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.guardIn.Close()
	s.guard.Wait()
}

// guardScript waits for its stdin to reach EOF, which happens when Close
// closes the pipe or when the test process exits in any way (even SIGKILL),
// then stops the server (immediate mode: the data is thrown away) and
// removes its files. It runs in its own process group, so a ^C in the
// terminal does not kill it first.
const guardScript = `
trap '' INT TERM HUP
read _ignored
if [ -f "$2/postmaster.pid" ]; then
  kill -QUIT "$(head -n 1 "$2/postmaster.pid")" 2>/dev/null
  # The server removes the file when it is done; waiting for the process
  # itself can take long where init is slow to reap it.
  i=0
  while [ -f "$2/postmaster.pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi
rm -rf "$1"
`

func start(bin string) (_ *Server, err error) {
	s := &Server{bin: bin, env: []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if s.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if s.base, err = os.MkdirTemp(tempParent(), "pgtest-"); err != nil {
		return nil, err
	}
	// Start the guard first, so the directory goes away whatever happens next.
	s.guard = exec.Command("/bin/sh", "-c", guardScript, "pgtest-guard", s.base, filepath.Join(s.base, "data"))
	s.guard.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.guardIn, err = s.guard.StdinPipe(); err != nil {
		os.RemoveAll(s.base)
		return nil, err
	}
	if err = s.guard.Start(); err != nil {
		os.RemoveAll(s.base)
		return nil, fmt.Errorf("starting the cleanup guard: %w", err)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if err := traversable(s.base); err != nil {
		return nil, err
	}
	s.data = filepath.Join(s.base, "data")
	s.log = filepath.Join(s.base, "postgres.log")
	sock := filepath.Join(s.base, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if s.cred != nil {
		for _, p := range []string{s.base, sock} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	if out, err := s.cmd("initdb", "-D", s.data, "-U", Superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	if err := appendFile(filepath.Join(s.data, "postgresql.conf"), "\ninclude 'pgtest.conf'\n"); err != nil {
		return nil, err
	}
	// A port picked now may be taken before the server binds it; try again.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 100
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
`, s.port, sock)
		if err := os.WriteFile(filepath.Join(s.data, "pgtest.conf"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
		if err = s.pgctl("start"); err == nil || attempt == 3 {
			return s, err
		}
	}
}

// tempParent prefers a large tmpfs: initdb and CREATE DATABASE are several
// times faster in memory than on a busy disk.
func tempParent() string {
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil && st.Bavail*uint64(st.Bsize) >= 1<<30 && syscall.Access("/dev/shm", 0o7) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

// cmd runs a server binary as the postgres OS user (when root), from a
// directory that user can enter.
func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(filepath.Join(s.bin, name), args...)
	c.Env = s.env
	c.Dir = s.base
	if s.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	c.WaitDelay = 5 * time.Second
	return c
}

func (s *Server) pgctl(action string, args ...string) error {
	args = append([]string{"-D", s.data, "-l", s.log, "-w", "-t", "60", "-s", action}, args...)
	out, err := s.cmd("pg_ctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v: %s\nserver log:\n%s", action, err, out, tail(s.log, 20))
	}
	return nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and there is no postgres OS user to run the server as (PostgreSQL refuses to run as root); the postgresql package creates it: %v", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %v", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// traversable checks that another user (postgres) can reach dir: every
// parent must be searchable by others.
func traversable(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by other users, so the postgres user cannot reach %s: set TMPDIR to a directory such as /tmp", p, dir)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

var (
	binOnce sync.Once
	binDir  string
)

// binaries returns the directory holding initdb, pg_ctl and postgres, or
// ends the test: skipped, or failed under CI.
func binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binDir = findBinaries() })
	if binDir == "" {
		msg := "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in /usr/lib/postgresql/*/bin or on PATH: install the postgresql package (apt-get install postgresql)"
		citest.Missing(t, msg+"; .ci/run installs it")
	}
	return binDir
}

func findBinaries() string {
	var dirs []string
	// The packaged binaries first, newest major version first.
	apt, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(apt, func(i, j int) bool { return pgVersion(apt[i]) > pgVersion(apt[j]) })
	dirs = append(dirs, apt...)
	for _, name := range []string{"pg_ctl", "initdb"} {
		if p, err := exec.LookPath(name); err == nil {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				dirs = append(dirs, filepath.Dir(r))
			}
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	for _, d := range dirs {
		ok := true
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if st, err := os.Stat(filepath.Join(d, name)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	return ""
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// Crash stops the server as a power cut would (pg_ctl stop -m immediate):
// no checkpoint, sessions cut; StartServer recovers from the WAL.
func (s *Server) Crash(t testing.TB) {
	t.Helper()
	s.stop(t, "immediate")
}

// Freeze stops every process of the server with SIGSTOP (a hung host):
// connections stay open and nothing answers. Thaw (also run when t ends)
// resumes them.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	pids := s.pids(t)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	t.Cleanup(func() { s.signal(pids, syscall.SIGCONT) })
}

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	s.signal(s.pids(t), syscall.SIGCONT)
}

func (s *Server) signal(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
}

// pids returns the postmaster and its children.
func (s *Server) pids(t testing.TB) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		t.Fatalf("pgtest: the server is not running: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("pgtest: postmaster.pid: %v", err)
	}
	pids := []int{pm}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		st, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		i := strings.LastIndexByte(string(st), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st)[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
