package auth

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Collections is what the connection page asks of the collection engine
// (collector.Engine). Its history is this process's: on several replicas,
// each shows the attempts it ran itself.
type Collections interface {
	CollectNow(ctx context.Context, id string) (collector.Attempt, error)
	Detail(id string) (collector.Detail, bool)
}

// reconnectOf says how connection c is reconnected: a link to its form
// method, or the redirect method a button starts. Every connection is
// offered it, whatever its state: a rotated key or a moved account is
// fixed in place, keeping the id and the series.
func (s *Server) reconnectOf(c store.Connection) (link, method string, ok bool) {
	p := s.provider(c.Vendor)
	if p == nil {
		return "", "", false
	}
	if fm := formMethod(p, c.AuthMethod); fm != nil {
		return "/connect/" + c.Vendor + "?" + url.Values{"method": {fm.Name()}, "reconnect": {c.ID}}.Encode(), "", true
	}
	if rm := redirectMethod(p, c.AuthMethod); rm != nil {
		return "", rm.Name(), true
	}
	return "", "", false
}

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

// summaryOf asks c's provider what its latest values show.
func (s *Server) summaryOf(c store.Connection, d collector.Detail) []provider.SummaryItem {
	sp, ok := s.provider(c.Vendor).(provider.Summarizer)
	if !ok || len(d.Latest) == 0 {
		return nil
	}
	var items []provider.SummaryItem
	func() {
		// A provider's bug must not take the page down.
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("summary failed", "vendor", c.Vendor, "id", c.ID, "panic", r)
				items = nil
			}
		}()
		items = sp.Summary(collector.View(c), provider.SamplesOf(d.Latest))
	}()
	return items
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
func (s *Server) connFailurePage(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, "No such connection", "This connection does not exist; it may have been disconnected.", "/", "Back to connections")
		return
	}
	s.storeErrorPage(w, err)
}

func (s *Server) connectionPage(w http.ResponseWriter, r *http.Request, a adminCtx) {
	s.renderConnection(w, r, a, http.StatusOK, "", "", "")
}

func (s *Server) renderConnection(w http.ResponseWriter, r *http.Request, a adminCtx, status int, newName, nameErr, notice string) {
	c, err := s.o.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.connFailurePage(w, err)
		return
	}
	var d collector.Detail
	if s.o.Collections != nil {
		d, _ = s.o.Collections.Detail(c.ID)
	}
	data := connectionData{base: base{Title: c.Name, User: a.User, CSRF: a.CSRF}, Conn: c, VTitle: s.title(c.Vendor),
		State: c.State, CanCollect: s.o.Collections != nil, RateLimited: d.RateLimitedUntil, NewName: newName, NameError: nameErr, Notice: notice}
	data.State = liveState(c, d)
	data.StateClass = stateClass(data.State)
	// The stored status is written behind the collection: this process's
	// own attempts are newer.
	if len(d.History) > 0 && !d.History[0].At.Before(c.Updated) {
		data.Conn.LastError = d.History[0].Error
	}
	for _, at := range d.History {
		if at.Outcome == collector.OutcomeSuccess {
			if at.At.After(data.Conn.LastSuccess) {
				data.Conn.LastSuccess = at.At
			}
			break
		}
	}
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
	data.Summary = summaryViews(s.summaryOf(c, d))
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
	data.ReconnectURL, data.ReconnectMethod, data.Reconnect = s.reconnectOf(c)
	if p := s.provider(c.Vendor); p != nil {
		data.CanInvite = usable(p)
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

// liveState is the newer of the stored state and this process's last
// attempt: the status is written behind a collection, and another replica
// (or a vendor's revocation callback) may have changed it since.
func liveState(c store.Connection, d collector.Detail) string {
	if len(d.History) > 0 && d.State != "" && !d.History[0].At.Before(c.Updated) {
		return d.State
	}
	return c.State
}

// took shows a duration: milliseconds below a second, else seconds.
func took(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

// collectNow runs Collect now and names its outcome for the page.
func (s *Server) collectNow(ctx context.Context, id string) (string, error) {
	if s.o.Collections == nil {
		return "", fail(http.StatusNotImplemented, "collecting on demand is not available in this exporter")
	}
	_, err := s.o.Collections.CollectNow(ctx, id)
	var nc *collector.NotCollectedError
	switch {
	case err == nil:
		return "collected", nil
	case errors.Is(err, store.ErrNotFound):
		return "", err
	case errors.As(err, &nc):
		switch nc.State {
		case store.StateRateLimited:
			return "rate_limited", err
		case store.StateRevoked, store.StateExpired:
			return "needs_reconnect", err
		}
		if nc.Reason != "" {
			return "not_collected", err
		}
		return "busy", err
	}
	return "", err
}

func (s *Server) collectSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	id := r.PathValue("id")
	ctx, cancel := s.contextOf(r)
	defer cancel()
	code, err := s.collectNow(ctx, id)
	if code == "" {
		s.connFailurePage(w, err)
		return
	}
	s.log.Info("collect now", "id", id, "by", a.User, "outcome", code)
	http.Redirect(w, r, "/connections/"+url.PathEscape(id)+"?msg="+code, http.StatusSeeOther)
}

// rename changes a connection's name (its connection label).
func (s *Server) rename(ctx context.Context, id, name, user string) (store.Connection, error) {
	if !nameRE.MatchString(name) {
		f := fail(http.StatusBadRequest, "The connection name must be %s.", nameRule)
		if name == "" {
			f.Msg = "A new name is required (" + nameRule + ")."
		}
		f.Field = "name"
		return store.Connection{}, f
	}
	var out store.Connection
	old := ""
	err := s.o.Store.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
		old = c.Name
		out = c
		if c.Name == name {
			return nil, nil
		}
		out.Name = name
		return &out, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, err
	case errors.Is(err, store.ErrNameTaken):
		return out, nameTaken(name)
	case err != nil:
		return out, err
	}
	if old != name {
		s.changed(id)
		s.log.Info("connection renamed", "vendor", out.Vendor, "id", id, "from", old, "to", name, "by", user)
	}
	return out, nil
}

func (s *Server) renameSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	id, name := r.PathValue("id"), strings.TrimSpace(r.PostFormValue("name"))
	_, err := s.rename(r.Context(), id, name, a.User)
	if err != nil {
		f := asFailure(err)
		if f.Field != "name" {
			s.connFailurePage(w, err)
			return
		}
		s.renderConnection(w, r, a, f.Status, name, f.Msg, "")
		return
	}
	http.Redirect(w, r, "/connections/"+url.PathEscape(id)+"?msg=renamed", http.StatusSeeOther)
}
