package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Attempt is one collection attempt of ConnectionDetail.History.
type Attempt struct {
	Time     time.Time `json:"time"`
	Duration float64   `json:"duration_seconds"`
	Outcome  string    `json:"outcome"`
	Error    string    `json:"error"`
}

// ConnectionDetail is GET /api/v1/connections/{id}: the connection,
// what its provider shows of its latest values, and this process's attempts.
type ConnectionDetail struct {
	Connection
	CollectedAt      *time.Time             `json:"collected_at"`
	RateLimitedUntil *time.Time             `json:"rate_limited_until"`
	Summary          []provider.SummaryItem `json:"summary"`
	History          []Attempt              `json:"history"`
}

func (s *Handler) connectionDetail(c store.Connection) ConnectionDetail {
	d, _ := s.c.Connect.Detail(c.ID)
	out := ConnectionDetail{Connection: s.toAPIConn(s.c.Connect.Live(c)), CollectedAt: timePtr(d.CollectedAt), RateLimitedUntil: timePtr(d.RateLimitedUntil),
		Summary: s.c.Connect.SummaryOf(c, d), History: make([]Attempt, 0, len(d.History))}
	if out.Summary == nil {
		out.Summary = []provider.SummaryItem{}
	}
	for _, a := range d.History {
		out.History = append(out.History, Attempt{Time: a.At.UTC(), Duration: a.Duration.Seconds(), Outcome: a.Outcome, Error: a.Error})
	}
	return out
}

func (s *Handler) apiGet(w http.ResponseWriter, r *http.Request, _ string) {
	c, err := s.c.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.connectionDetail(c))
}

// apiRename is PATCH /api/v1/connections/{id} {"name": …}.
func (s *Handler) apiRename(w http.ResponseWriter, r *http.Request, user string) {
	b, err := readBody(w, r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	var req struct {
		Name *string `json:"name"`
	}
	if err := decodeStrict(b, &req); err != nil {
		writeFailure(w, err)
		return
	}
	if req.Name == nil {
		writeJSON(w, http.StatusBadRequest, Error{Error: "name is required: send {\"name\": \"new-name\"} (" + connect.NameRule + ")", Field: "name"})
		return
	}
	c, err := s.c.Connect.Rename(r.Context(), r.PathValue("id"), *req.Name, user)
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.toAPIConn(c))
}

// apiCollect is POST /api/v1/connections/{id}/collect: Collect now. Like
// every API write it must be declared JSON (the body is ignored). It
// answers the connection as GET does; a refusal (rate limit, a credential
// that needs a reconnect) answers 409 or 429 with the reason.
func (s *Handler) apiCollect(w http.ResponseWriter, r *http.Request, user string) {
	id := r.PathValue("id")
	if err := requireJSON(r); err != nil {
		writeFailure(w, err)
		return
	}
	ctx, cancel := connect.ContextOf(r)
	defer cancel()
	code, err := s.c.Connect.CollectNow(ctx, id)
	switch code {
	case "":
		writeConnFailure(w, r, err)
		return
	case "rate_limited":
		var nc *collector.NotCollectedError
		if errors.As(err, &nc) {
			w.Header().Set("Retry-After", retryAfter(nc.Until, s.c.Now()))
		}
		writeJSONError(w, http.StatusTooManyRequests, err.Error())
		return
	case "needs_reconnect":
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	case "busy", "not_collected":
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.c.Log.Info("collect now", "id", id, "by", user, "outcome", code)
	c, err := s.c.Store.Get(r.Context(), id)
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.connectionDetail(c))
}

func retryAfter(until, now time.Time) string {
	secs := int(until.Sub(now).Seconds()) + 1
	return strconv.Itoa(max(secs, 1))
}
