package build

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/config"
)

// What the test passes as build arguments, like
// docker build --build-arg VERSION=... --build-arg REVISION=...
var buildArgs = map[string]string{
	"VERSION":  "9.8.7-dockerfile-test",
	"REVISION": "0123456789abcdef-dockerfile-test",
}

const binaryPath = "/bin/saas_exporter"

type heredoc struct {
	Name string
	Body string
}

type instruction struct {
	Line     int
	Cmd      string // upper case: FROM, RUN, COPY, ...
	Args     string // the rest, continuation lines joined
	Heredocs []heredoc
}

type stage struct {
	From   string // base image
	Name   string // AS name
	Instrs []instruction
}

var heredocRE = regexp.MustCompile(`<<(-?)["']?([A-Za-z_][A-Za-z0-9_]*)["']?`)

// parseDockerfile understands what a Dockerfile needs here: comments,
// line continuations, heredocs and stages.
func parseDockerfile(text string) ([]stage, error) {
	var stages []stage
	sc := bufio.NewScanner(strings.NewReader(text))
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		start := lineNo
		for strings.HasSuffix(strings.TrimRight(line, " \t"), `\`) {
			line = strings.TrimSuffix(strings.TrimRight(line, " \t"), `\`)
			more, ok := next()
			for ok && (strings.TrimSpace(more) == "" || strings.HasPrefix(strings.TrimSpace(more), "#")) {
				more, ok = next() // comment lines inside a continuation are dropped
			}
			if !ok {
				return nil, fmt.Errorf("line %d: continuation at end of file", start)
			}
			line += " " + strings.TrimSpace(more)
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		in := instruction{Line: start, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		for _, m := range heredocRE.FindAllStringSubmatch(in.Args, -1) {
			var body strings.Builder
			for {
				l, ok := next()
				if !ok {
					return nil, fmt.Errorf("line %d: heredoc %s not terminated", start, m[2])
				}
				if l == m[2] || (m[1] == "-" && strings.TrimLeft(l, "\t") == m[2]) {
					break
				}
				body.WriteString(l + "\n")
			}
			in.Heredocs = append(in.Heredocs, heredoc{Name: m[2], Body: body.String()})
		}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			st := stage{}
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.Name = f[i+1]
					i++
				case st.From == "":
					st.From = f[i]
				}
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd == "ARG" {
				continue // global build arguments
			}
			return nil, fmt.Errorf("line %d: %s before the first FROM", start, in.Cmd)
		}
		stages[len(stages)-1].Instrs = append(stages[len(stages)-1].Instrs, in)
	}
	return stages, sc.Err()
}

// flags splits "--from=build --chown=1:2 a b" into flags and the rest.
func flags(args string) (map[string]string, []string) {
	fl := map[string]string{}
	var rest []string
	for _, f := range strings.Fields(args) {
		if strings.HasPrefix(f, "--") && len(rest) == 0 {
			k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
			fl[k] = v
			continue
		}
		rest = append(rest, f)
	}
	return fl, rest
}

// shellWords splits a command line as sh would for the quoting used in a
// RUN line (single quotes, double quotes, backslashes), after expanding
// ${VAR} and $VAR from vars.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	expand := func(i int) (int, error) {
		// s[i] == '$'
		if i+1 < len(s) && s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return 0, fmt.Errorf("unterminated ${ in %q", s)
			}
			name := s[i+2 : i+end]
			v, ok := vars[name]
			if !ok {
				return 0, fmt.Errorf("variable %s is not an ARG or ENV of the stage", name)
			}
			cur.WriteString(v)
			return i + end + 1, nil
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 {
			cur.WriteByte('$')
			return j, nil
		}
		v, ok := vars[s[i+1:j]]
		if !ok {
			return 0, fmt.Errorf("variable %s is not an ARG or ENV of the stage", s[i+1:j])
		}
		cur.WriteString(v)
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for i < len(s) && s[i] != '"' {
				switch {
				case s[i] == '\\' && i+1 < len(s):
					cur.WriteByte(s[i+1])
					i += 2
				case s[i] == '$':
					var err error
					if i, err = expand(i); err != nil {
						return nil, err
					}
				default:
					cur.WriteByte(s[i])
					i++
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf(`unterminated " in %q`, s)
			}
			i++
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			inWord = true
			i += 2
		case c == '$':
			var err error
			if i, err = expand(i); err != nil {
				return nil, err
			}
			inWord = true
		case strings.IndexByte(";&|<>`", c) >= 0:
			return nil, fmt.Errorf("shell operator %q in the go build line %q: keep it one plain command", c, s)
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// jsonOrWords reads an exec-form ["a", "b"] or a shell-form argument.
func jsonOrWords(s string) (list []string, execForm bool) {
	if json.Unmarshal([]byte(s), &list) == nil {
		return list, true
	}
	return strings.Fields(s), false
}

type dockerfile struct {
	stages []stage
	build  *stage // the stage that runs go build
	final  *stage
	root   string // repository root
}

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatalf("reading the Dockerfile: %v", err)
	}
	stages, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a multi-stage build (builder + minimal final stage)", len(stages))
	}
	d := &dockerfile{stages: stages, final: &stages[len(stages)-1], root: root}
	for i := range stages {
		for _, in := range stages[i].Instrs {
			if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
				d.build = &stages[i]
			}
		}
	}
	if d.build == nil || d.build == d.final {
		t.Fatal("Dockerfile: no builder stage with a RUN go build before the final stage")
	}
	return d
}

// goBuild returns the build stage's go build command line (words) and the
// environment it runs with (ENV, and assignments before "go").
func (d *dockerfile) goBuild(t *testing.T) (words []string, env map[string]string) {
	t.Helper()
	vars := map[string]string{}
	env = map[string]string{}
	var run string
	for _, in := range d.build.Instrs {
		switch in.Cmd {
		case "ARG":
			name, def, _ := strings.Cut(in.Args, "=")
			if v, ok := buildArgs[name]; ok {
				def = v
			}
			vars[name] = strings.Trim(def, `"`)
		case "ENV":
			for _, kv := range strings.Fields(in.Args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile line %d: write ENV as KEY=value", in.Line)
				}
				vars[k], env[k] = strings.Trim(v, `"`), strings.Trim(v, `"`)
			}
		case "RUN":
			if strings.Contains(in.Args, "go build") {
				run = in.Args
			}
		}
	}
	for name := range buildArgs {
		if _, ok := vars[name]; !ok {
			t.Errorf("Dockerfile build stage: no ARG %s (needed for the -ldflags -X version stamp)", name)
		}
	}
	words, err := shellWords(run, vars)
	if err != nil {
		t.Fatalf("Dockerfile go build line: %v", err)
	}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(words[0], "=")
		env[k] = v
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("Dockerfile: RUN line %q is not a plain go build", run)
	}
	return words, env
}

// copySources lists the COPY instructions of a stage that read the build
// context (no --from, no heredoc): sources and destination.
func copySources(st *stage) [][2][]string {
	var out [][2][]string
	for _, in := range st.Instrs {
		if in.Cmd != "COPY" && in.Cmd != "ADD" {
			continue
		}
		fl, rest := flags(in.Args)
		if _, ok := fl["from"]; ok || len(in.Heredocs) > 0 || len(rest) < 2 {
			continue
		}
		out = append(out, [2][]string{rest[:len(rest)-1], {rest[len(rest)-1]}})
	}
	return out
}

func TestDockerfileStructure(t *testing.T) {
	d := loadDockerfile(t)

	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(d.root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]); !strings.HasPrefix(d.build.From, want) {
		t.Errorf("builder image %q, want %s (go.mod says go %s)", d.build.From, want, m[1])
	}

	words, env := d.goBuild(t)
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("go build runs with CGO_ENABLED=%q, want 0 (static binary for a distroless/scratch image)", env["CGO_ENABLED"])
	}
	if !slices.Contains(words, "-trimpath") {
		t.Errorf("go build %v: no -trimpath", words[2:])
	}
	ld := ""
	for i, w := range words {
		if w == "-ldflags" && i+1 < len(words) {
			ld = words[i+1]
		} else if v, ok := strings.CutPrefix(w, "-ldflags="); ok {
			ld = v
		}
	}
	for _, want := range []string{"-s", "-w",
		"-X github.com/prometheus/common/version.Version=" + buildArgs["VERSION"],
		"-X github.com/prometheus/common/version.Revision=" + buildArgs["REVISION"]} {
		if !strings.Contains(" "+ld+" ", " "+want+" ") {
			t.Errorf("go build -ldflags %q: missing %q", ld, want)
		}
	}

	// Every COPY from the repository names something that exists.
	for _, st := range d.stages {
		for _, c := range copySources(&st) {
			for _, src := range c[0] {
				if _, err := os.Stat(filepath.Join(d.root, src)); err != nil {
					t.Errorf("Dockerfile COPY %s: not in the repository (%v)", src, err)
				}
			}
		}
	}

	// Final stage: minimal base, non-root, binary, volume, config, port.
	f := d.final
	if !strings.HasPrefix(f.From, "gcr.io/distroless/static") && f.From != "scratch" {
		t.Errorf("final image %q, want gcr.io/distroless/static:nonroot or scratch", f.From)
	}
	var user, volume, entry, cmd []string
	var userLine string
	for _, in := range f.Instrs {
		switch in.Cmd {
		case "USER":
			userLine = in.Args
		case "VOLUME":
			volume, _ = jsonOrWords(in.Args)
		case "ENTRYPOINT":
			var ok bool
			if entry, ok = jsonOrWords(in.Args); !ok {
				t.Errorf("ENTRYPOINT %s: use the exec form [\"...\"] so signals reach the exporter", in.Args)
			}
		case "CMD":
			cmd, _ = jsonOrWords(in.Args)
		case "HEALTHCHECK":
			t.Errorf("line %d: no HEALTHCHECK wanted (Prometheus checks the exporter; see the comment)", in.Line)
		}
	}
	user = strings.SplitN(userLine, ":", 2)
	if userLine == "" || user[0] == "root" || user[0] == "0" {
		t.Errorf("final stage USER %q: must be a non-root user", userLine)
	}
	if len(entry) == 0 || entry[0] != binaryPath {
		t.Errorf("ENTRYPOINT %v: want %s first", entry, binaryPath)
	}
	if len(volume) != 1 {
		t.Fatalf("final stage VOLUME %v: want exactly one data volume", volume)
	}

	// The binary copied into the image is the one go build writes.
	out := ""
	for i, w := range words {
		if w == "-o" && i+1 < len(words) {
			out = words[i+1]
		}
	}
	copiedBinary, volumeOwner := false, ""
	for _, in := range f.Instrs {
		if in.Cmd != "COPY" {
			continue
		}
		fl, rest := flags(in.Args)
		if fl["from"] == "" || len(rest) != 2 {
			continue
		}
		if (fl["from"] == d.build.Name) && rest[0] == out && rest[1] == binaryPath {
			copiedBinary = true
		}
		if path.Clean(rest[1]) == path.Clean(volume[0]) {
			volumeOwner = fl["chown"]
		}
	}
	if !copiedBinary {
		t.Errorf("final stage does not COPY --from=%s %s %s (the go build output)", d.build.Name, out, binaryPath)
	}
	if volumeOwner != userLine {
		t.Errorf("volume %s is owned by %q in the image, want the USER %q so the exporter can write its store", volume[0], volumeOwner, userLine)
	}

	// The config the image starts with keeps its data on the volume.
	var configFile string
	for _, a := range append(slices.Clone(entry), cmd...) {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			configFile = v
		}
	}
	if configFile == "" {
		t.Fatalf("ENTRYPOINT %v / CMD %v: no --config.file=...", entry, cmd)
	}
	var configText string
	found := false
	for _, in := range f.Instrs {
		if in.Cmd == "COPY" && len(in.Heredocs) == 1 && strings.HasSuffix(in.Args, " "+configFile) {
			configText, found = in.Heredocs[0].Body, true
		}
	}
	if !found {
		t.Fatalf("final stage has no COPY <<EOF %s (the image's default configuration)", configFile)
	}
	cfg, err := config.Parse([]byte(configText))
	if err != nil {
		t.Fatalf("the image's %s is not a valid configuration: %v", configFile, err)
	}
	if path.Clean(cfg.DataDir) != path.Clean(volume[0]) {
		t.Errorf("the image's config has data_dir %q but the VOLUME is %q", cfg.DataDir, volume[0])
	}
}

// TestDockerfileBuild performs the Dockerfile's go build with its exact
// flags and environment in a directory holding only what the Dockerfile
// copies, then checks the binary.
func TestDockerfileBuild(t *testing.T) {
	d := loadDockerfile(t)
	words, env := d.goBuild(t)

	// A directory like the builder's WORKDIR: only what COPY brings in.
	src := t.TempDir()
	for _, c := range copySources(d.build) {
		srcs, dst := c[0], c[1][0]
		for _, s := range srcs {
			from := filepath.Join(d.root, s)
			fi, err := os.Stat(from)
			if err != nil {
				t.Fatalf("COPY %s: %v", s, err)
			}
			to := filepath.Join(src, dst)
			if !fi.IsDir() && (strings.HasSuffix(dst, "/") || len(srcs) > 1) {
				to = filepath.Join(to, filepath.Base(s))
			}
			if err := copyTree(from, to); err != nil {
				t.Fatal(err)
			}
		}
	}

	bin := filepath.Join(t.TempDir(), "saas_exporter")
	args := slices.Clone(words[1:])
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = nil
	for _, kv := range os.Environ() {
		// The golang image sets no GOFLAGS; ours must not change the build.
		if !strings.HasPrefix(kv, "GOFLAGS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s (as in the Dockerfile, with only its COPYed files): %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: it is not static and will not run on distroless/static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("binary has section %s: -ldflags \"-s -w\" should strip it", s)
		}
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(src)) {
		t.Errorf("binary contains the build directory %s: -trimpath missing", src)
	}

	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	for _, want := range []string{"version " + buildArgs["VERSION"], "revision: " + buildArgs["REVISION"]} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version output lacks %q (ldflags -X not applied?):\n%s", want, out)
		}
	}

	// EXPOSE matches the binary's default listen port.
	help, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, help)
	}
	m := regexp.MustCompile(`--web\.listen-address=\S*:(\d+)`).FindSubmatch(help)
	if m == nil {
		t.Fatalf("--help shows no default --web.listen-address:\n%s", help)
	}
	var expose []string
	for _, in := range d.final.Instrs {
		if in.Cmd == "EXPOSE" {
			for _, p := range strings.Fields(in.Args) {
				expose = append(expose, strings.TrimSuffix(p, "/tcp"))
			}
		}
	}
	if !slices.Equal(expose, []string{string(m[1])}) {
		t.Errorf("EXPOSE %v, want the default listen port %s", expose, m[1])
	}
}

// TestDockerfileCopiesEveryPackage names a package the exporter needs but
// the Dockerfile does not copy (clearer than the build failing).
func TestDockerfileCopiesEveryPackage(t *testing.T) {
	d := loadDockerfile(t)
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "../cmd/saas_exporter").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var copied []string
	for _, c := range copySources(d.build) {
		for _, s := range c[0] {
			copied = append(copied, filepath.Join(d.root, s))
		}
	}
	for _, dir := range strings.Fields(string(out)) {
		if !slices.ContainsFunc(copied, func(c string) bool { return dir == c || strings.HasPrefix(dir, c+string(filepath.Separator)) }) {
			rel, _ := filepath.Rel(d.root, dir)
			t.Errorf("the exporter imports the package in %s, which the Dockerfile does not COPY", rel)
		}
	}
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if e.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !e.Type().IsRegular() {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		o, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}

func TestParseDockerfile(t *testing.T) {
	stages, err := parseDockerfile("# syntax=docker/dockerfile:1\nARG G=1\nFROM golang:1.26 AS build\nRUN a \\\n  # note\n  b\nCOPY <<EOF /x\nk: v\nEOF\nFROM scratch\nUSER 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "build" || stages[0].From != "golang:1.26" || stages[1].From != "scratch" {
		t.Fatalf("stages: %+v", stages)
	}
	if in := stages[0].Instrs[0]; in.Cmd != "RUN" || strings.Join(strings.Fields(in.Args), " ") != "a b" {
		t.Errorf("continuation: %+v", in)
	}
	if in := stages[0].Instrs[1]; len(in.Heredocs) != 1 || in.Heredocs[0].Body != "k: v\n" {
		t.Errorf("heredoc: %+v", in)
	}
	if _, err := parseDockerfile("RUN x\n"); err == nil {
		t.Error("RUN before FROM accepted")
	}
	if _, err := parseDockerfile("FROM a\nCOPY <<EOF /x\nno end\n"); err == nil {
		t.Error("unterminated heredoc accepted")
	}

	w, err := shellWords(`CGO=0 go build -ldflags "-s -X a.V=${V}" -o '/o ut' $P`, map[string]string{"V": "1.0", "P": "./cmd"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(w, "|"); got != "CGO=0|go|build|-ldflags|-s -X a.V=1.0|-o|/o ut|./cmd" {
		t.Errorf("shellWords: %s", got)
	}
	if _, err := shellWords(`go build -ldflags "${NOPE}"`, nil); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("unknown variable: err = %v", err)
	}
	if _, err := shellWords(`go build && rm -rf /`, nil); err == nil {
		t.Error("shell operator accepted")
	}
}
