package auth

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

type apiAttempt struct {
	Time     time.Time `json:"time"`
	Duration float64   `json:"duration_seconds"`
	Outcome  string    `json:"outcome"`
	Error    string    `json:"error"`
}

// apiConnectionDetail is GET /api/v1/connections/{id}: the connection,
// what its provider shows of its latest values, and this process's attempts.
type apiConnectionDetail struct {
	apiConnection
	CollectedAt      *time.Time             `json:"collected_at"`
	RateLimitedUntil *time.Time             `json:"rate_limited_until"`
	Summary          []provider.SummaryItem `json:"summary"`
	History          []apiAttempt           `json:"history"`
}

func (s *Server) connectionDetail(c store.Connection) apiConnectionDetail {
	var d collector.Detail
	if s.o.Collections != nil {
		d, _ = s.o.Collections.Detail(c.ID)
	}
	out := apiConnectionDetail{apiConnection: s.toAPIConn(c), CollectedAt: timePtr(d.CollectedAt), RateLimitedUntil: timePtr(d.RateLimitedUntil),
		Summary: s.summaryOf(c, d), History: make([]apiAttempt, 0, len(d.History))}
	if out.Summary == nil {
		out.Summary = []provider.SummaryItem{}
	}
	out.State = liveState(c, d)
	for _, a := range d.History {
		out.History = append(out.History, apiAttempt{Time: a.At.UTC(), Duration: a.Duration.Seconds(), Outcome: a.Outcome, Error: a.Error})
	}
	return out
}

func (s *Server) apiGet(w http.ResponseWriter, r *http.Request, _ string) {
	c, err := s.o.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.connectionDetail(c))
}

// apiRename is PATCH /api/v1/connections/{id} {"name": …}.
func (s *Server) apiRename(w http.ResponseWriter, r *http.Request, user string) {
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
		writeJSON(w, http.StatusBadRequest, apiError{Error: "name is required: send {\"name\": \"new-name\"} (" + nameRule + ")", Field: "name"})
		return
	}
	c, err := s.rename(r.Context(), r.PathValue("id"), *req.Name, user)
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
func (s *Server) apiCollect(w http.ResponseWriter, r *http.Request, user string) {
	id := r.PathValue("id")
	if err := requireJSON(r); err != nil {
		writeFailure(w, err)
		return
	}
	ctx, cancel := s.contextOf(r)
	defer cancel()
	code, err := s.collectNow(ctx, id)
	switch code {
	case "":
		writeConnFailure(w, r, err)
		return
	case "rate_limited":
		var nc *collector.NotCollectedError
		if errors.As(err, &nc) {
			w.Header().Set("Retry-After", retryAfter(nc.Until, s.now()))
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
	s.log.Info("collect now", "id", id, "by", user, "outcome", code)
	c, err := s.o.Store.Get(r.Context(), id)
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
