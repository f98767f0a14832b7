package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/saas-exporter/saas_exporter/auth/connect"
)

// apiSetBudget: PUT /api/v1/connections/{id}/budget {"monthly": 500 | null}.
func (s *Handler) apiSetBudget(w http.ResponseWriter, r *http.Request, user string) {
	b, err := readBody(w, r) // 415 without a JSON Content-Type
	if err != nil {
		writeFailure(w, err)
		return
	}
	v, err := parseBudgetJSON(b)
	if err != nil {
		writeFailure(w, err)
		return
	}
	c, err := s.c.Connect.SetBudget(r.Context(), r.PathValue("id"), v, user)
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.toAPIConn(c))
}

// parseBudgetJSON reads {"monthly": number | null}; nil means clear.
func parseBudgetJSON(b []byte) (*float64, error) {
	var obj map[string]json.RawMessage
	if err := decodeStrict(b, &obj); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		f := connect.Fail(http.StatusBadRequest, format, args...)
		f.Field = "monthly"
		return f
	}
	for k := range obj {
		if k != "monthly" {
			return nil, connect.Fail(http.StatusBadRequest, "unknown field %q; send {\"monthly\": 500}, or {\"monthly\": null} to clear the budget", k)
		}
	}
	raw, ok := obj["monthly"]
	if !ok {
		return nil, bad("field \"monthly\" is required: send {\"monthly\": 500}, or {\"monthly\": null} to clear the budget")
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, nil
	}
	var v float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return nil, bad("\"monthly\" must be a JSON number such as 500, or null to clear the budget (got %s)", connect.ClipInput(string(raw)))
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, bad("\"monthly\" %s is not a usable number; the budget must be between 0 and 1e12", connect.ClipInput(string(raw)))
	}
	if err := connect.CheckBudget(v, connect.ClearAPI); err != nil {
		f := connect.AsFailure(err)
		f.Field = "monthly"
		return nil, f
	}
	return &v, nil
}
