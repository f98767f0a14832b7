package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/store"
)

//go:embed templates/*.html
var templateFS embed.FS

type pages struct {
	t map[string]*template.Template
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"join": func(s []string) string {
		if len(s) == 0 {
			return "—"
		}
		return strings.Join(s, ", ")
	},
	"fmtBudget": func(v *float64) string { return connect.FmtBudget(*v) },
	"or": func(s, alt string) string {
		if s == "" {
			return alt
		}
		return s
	},
}

func loadPages() (*pages, error) {
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	p := &pages{t: map[string]*template.Template{}}
	for _, e := range entries {
		if e.Name() == "layout.html" {
			continue
		}
		t, err := template.New(e.Name()).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("auth: template %s: %w", e.Name(), err)
		}
		p.t[e.Name()] = t
	}
	return p, nil
}

// base is what every page template needs.
type base struct {
	Title string
	// User is the signed-in admin; empty on invite and login pages, which
	// show no navigation.
	User  string
	CSRF  string
	Flash string
	// Warn, if set, is a problem with how the page was opened; WarnLink
	// is where to go instead.
	Warn, WarnLink string
}

// securityHeaders: no framing, no referrer (invite tokens and callback
// parameters are in URLs), no caching of pages that show connections.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Pages) render(w http.ResponseWriter, status int, page string, data any) {
	t := s.pages.t[page]
	var buf bytes.Buffer
	if t == nil {
		s.c.Log.Error("missing page template", "page", page)
		status = http.StatusInternalServerError
		buf.WriteString("internal error: page template missing")
	} else if err := t.ExecuteTemplate(&buf, page, data); err != nil {
		s.c.Log.Error("rendering page", "page", page, "err", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error rendering the page; see the exporter log")
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	base
	Status   int
	Message  string
	Detail   string
	Link     string
	LinkText string
}

// errorPage renders a page that says what happened and where to go next.
func (s *Pages) errorPage(w http.ResponseWriter, status int, title, msg, link, linkText string) {
	s.render(w, status, "error.html", errorData{base: base{Title: title}, Status: status, Message: msg, Link: link, LinkText: linkText})
}

// flashText maps a fixed message code to a fixed text; name is only shown
// when it is a valid connection name.
func flashText(code, name string) string {
	label := "the connection"
	if connect.ValidName(name) {
		label = "“" + name + "”"
	}
	q := func(s string) string { return fmt.Sprintf(s, label) }
	switch code {
	case "connected":
		return q("Connected %s.")
	case "updated":
		return q("This account was already connected as %s; its credential was replaced.")
	case "reconnected":
		return q("Reconnected %s.")
	case "disconnected":
		return q("Disconnected %s; its credential was deleted.")
	case "invite_created":
		return q("Invite for %s created; copy its link from the list of invites below.")
	case "budget_set":
		return q("Budget of %s saved.")
	case "budget_cleared":
		return q("Budget of %s cleared.")
	case "invite_revoked":
		return "Invite revoked; its link no longer works."
	case "logged_out":
		return "You are signed out."
	}
	return ""
}

// stateClass maps a state to a CSS class for its badge.
func stateClass(state string) string {
	switch state {
	case store.StateActive, store.StateExpired, store.StateRevoked, store.StateError, store.StateRateLimited:
		return "state-" + state
	}
	return "state-unknown"
}
