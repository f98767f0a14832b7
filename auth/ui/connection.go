package ui

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// summaryView is one group of items on the connection page.
type summaryView struct {
	Group string
	Items []itemView
}

type itemView struct {
	Label, Value, Note string
	Meter              *meterView
}

// meterView is drawn as inline SVG by the template (no script, no style
// attribute: the page's CSP allows neither to be needed).
type meterView struct {
	Fill  string // width of the filled bar, of meterWidth
	Label string // "62% of 50,000 credits"; empty for a percentage of 100%
	Aria  string // what a screen reader says
}

const meterWidth = 200

type attemptView struct {
	collector.Attempt
	Took string
}

type settingView struct{ Key, Value string }

type connectionData struct {
	base
	Conn       store.Connection
	VTitle     string
	State      string
	StateClass string
	Settings   []settingView
	// Notice is an error or refusal to show in red.
	Notice          string
	Summary         []summaryView
	CollectedAt     time.Time
	NoSummary       string // why there are no values
	History         []attemptView
	CanCollect      bool
	RateLimited     time.Time
	ReconnectURL    string
	ReconnectMethod string
	Reconnect       bool
	CanInvite       bool // the vendor has a usable method, so an invite can work
	NewName         string
	NameError       string
}

// formatValue shows a number as a person reads it: thousands separated,
// two decimals unless whole, then its unit.
func formatValue(v float64, unit string) string {
	var s string
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case unit == "%":
		s = strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		s = group(strconv.FormatFloat(v, 'f', 0, 64))
	default:
		s = group(strconv.FormatFloat(v, 'f', 2, 64))
	}
	if unit == "" {
		return s
	}
	if unit == "%" {
		return s + "%"
	}
	return s + " " + unit
}

// group puts thousands separators into a formatted number.
func group(s string) string {
	sign, frac := "", ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String() + frac
}

// percentOf shows v/limit as a whole percentage that reads 100% only when
// the limit is reached.
func percentOf(v, limit float64) string {
	p := 100 * v / limit
	switch {
	case p > 0 && p < 1:
		return "<1%"
	case p < 100:
		p = math.Floor(p)
	default:
		p = math.Round(p)
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// summaryViews groups items as the provider ordered them and sizes meters.
func summaryViews(items []provider.SummaryItem) []summaryView {
	var out []summaryView
	for _, it := range items {
		if len(out) == 0 || out[len(out)-1].Group != it.Group {
			out = append(out, summaryView{Group: it.Group})
		}
		v := itemView{Label: it.Label, Value: it.Text, Note: it.Note}
		if v.Value == "" {
			v.Value = formatValue(it.Value, it.Unit)
		}
		if it.Limit > 0 && !math.IsNaN(it.Value) && !math.IsInf(it.Limit, 0) {
			frac := max(0, min(it.Value/it.Limit, 1))
			v.Meter = &meterView{Fill: strconv.FormatFloat(frac*meterWidth, 'f', 1, 64)}
			// A percentage of 100% needs no second label.
			if it.Unit != "%" || it.Limit != 100 {
				v.Meter.Label = percentOf(it.Value, it.Limit) + " of " + formatValue(it.Limit, it.Unit)
			}
			v.Meter.Aria = it.Label + ": " + v.Value
			if v.Meter.Label != "" {
				v.Meter.Aria += ", " + v.Meter.Label
			}
		}
		out[len(out)-1].Items = append(out[len(out)-1].Items, v)
	}
	return out
}

// connectionCode maps a page message code to its text; notice is true for
// refusals shown in red.
func connectionMsg(code string, d collector.Detail) (text string, notice bool) {
	switch code {
	case "collected":
		if len(d.History) > 0 && d.History[0].Outcome != collector.OutcomeSuccess {
			return "Collected just now, and it failed: see the first attempt below.", true
		}
		return "Collected just now; the values below are fresh.", false
	case "renamed":
		return "Renamed. Prometheus shows this connection's series under the new name from its next scrape.", false
	case "rate_limited":
		if !d.RateLimitedUntil.IsZero() {
			return "Not collected: the vendor asked to wait until " + d.RateLimitedUntil.UTC().Format("2006-01-02 15:04:05 UTC") + "; Collect now works again after that.", true
		}
		return "Not collected: the vendor asked to wait; the wait is over now, try again.", true
	case "needs_reconnect":
		return "Not collected: the vendor no longer accepts this credential. Reconnect it first.", true
	case "busy":
		return "Not collected: too many connections were being collected at once (scrape.concurrency). Try again in a moment.", true
	case "not_collected":
		return "Not collected: the exporter's store failed, or another replica was refreshing this connection's token. Try again in a moment.", true
	}
	return "", false
}

// connFailurePage answers a page request about a connection that failed:
// 404 for an unknown id, else the store's error.
func (s *Pages) connFailurePage(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, "No such connection", "This connection does not exist; it may have been disconnected.", "/", "Back to connections")
		return
	}
	s.storeErrorPage(w, err)
}

func (s *Pages) connectionPage(w http.ResponseWriter, r *http.Request, a adminCtx) {
	s.renderConnection(w, r, a, http.StatusOK, "", "", "")
}

func (s *Pages) renderConnection(w http.ResponseWriter, r *http.Request, a adminCtx, status int, newName, nameErr, notice string) {
	c, err := s.c.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.connFailurePage(w, err)
		return
	}
	d, canCollect := s.c.Connect.Detail(c.ID)
	live := s.c.Connect.Live(c)
	data := connectionData{base: base{Title: c.Name, User: a.User, CSRF: a.CSRF}, Conn: live, VTitle: s.c.Connect.Title(c.Vendor),
		State: live.State, StateClass: stateClass(live.State), CanCollect: canCollect, RateLimited: d.RateLimitedUntil, NewName: newName, NameError: nameErr, Notice: notice}
	if notice == "" {
		text, isNotice := connectionMsg(r.URL.Query().Get("msg"), d)
		if isNotice {
			data.Notice = text
		} else {
			data.Flash = text
		}
	}
	for k, v := range c.Settings {
		data.Settings = append(data.Settings, settingView{settingLabel(k), v})
	}
	sort.Slice(data.Settings, func(i, j int) bool { return data.Settings[i].Key < data.Settings[j].Key })
	data.Summary = summaryViews(s.c.Connect.SummaryOf(c, d))
	data.CollectedAt = d.CollectedAt
	if len(data.Summary) == 0 {
		switch {
		case len(d.Latest) == 0:
			data.NoSummary = "Nothing collected by this exporter process yet. Use Collect now, or wait for the next scrape."
		default:
			data.NoSummary = "This vendor's provider shows no summary; its values are in /metrics."
		}
	}
	for _, at := range d.History {
		data.History = append(data.History, attemptView{Attempt: at, Took: took(at.Duration)})
	}
	data.ReconnectURL, data.ReconnectMethod, data.Reconnect = s.c.Connect.ReconnectOf(c)
	if p := s.c.Connect.Provider(c.Vendor); p != nil {
		data.CanInvite = connect.Usable(p)
	}
	s.render(w, status, "connection.html", data)
}

// settingLabel shows a setting's key as a label: "workspace_slug" → "Workspace slug".
func settingLabel(k string) string {
	k = strings.ReplaceAll(k, "_", " ")
	if k == "" {
		return k
	}
	return strings.ToUpper(k[:1]) + k[1:]
}

// took shows a duration: milliseconds below a second, else seconds.
func took(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

func (s *Pages) collectSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	id := r.PathValue("id")
	ctx, cancel := connect.ContextOf(r)
	defer cancel()
	code, err := s.c.Connect.CollectNow(ctx, id)
	if code == "" {
		s.connFailurePage(w, err)
		return
	}
	s.c.Log.Info("collect now", "id", id, "by", a.User, "outcome", code)
	http.Redirect(w, r, "/connections/"+url.PathEscape(id)+"?msg="+code, http.StatusSeeOther)
}

func (s *Pages) renameSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	id, name := r.PathValue("id"), strings.TrimSpace(r.PostFormValue("name"))
	_, err := s.c.Connect.Rename(r.Context(), id, name, a.User)
	if err != nil {
		f := connect.AsFailure(err)
		if f.Field != "name" {
			s.connFailurePage(w, err)
			return
		}
		s.renderConnection(w, r, a, f.Status, name, f.Msg, "")
		return
	}
	http.Redirect(w, r, "/connections/"+url.PathEscape(id)+"?msg=renamed", http.StatusSeeOther)
}
