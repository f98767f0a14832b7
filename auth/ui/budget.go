package ui

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/store"
)

// budgetSubmit: the form on the connections page. An empty value or the
// Clear button clears the budget.
func (s *Pages) budgetSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	var v *float64
	text := strings.TrimSpace(r.PostFormValue("monthly"))
	if r.PostFormValue("clear") == "" && text != "" {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			s.errorPage(w, http.StatusBadRequest, "Budget not changed", fmt.Sprintf("“%s” is not a number. Enter the monthly budget as a number such as 500 or 1250.50 (no currency sign or thousands separator), or leave it empty to clear it.", connect.ClipInput(text)), "/", "Back to connections")
			return
		}
		if err := connect.CheckBudget(f, connect.ClearForm); err != nil {
			s.errorPage(w, http.StatusBadRequest, "Budget not changed", connect.AsFailure(err).Msg+" Nothing was changed.", "/", "Back to connections")
			return
		}
		v = &f
	}
	c, err := s.c.Connect.SetBudget(r.Context(), r.PathValue("id"), v, a.User)
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, "No such connection", "This connection does not exist; it may have been disconnected.", "/", "Back to connections")
		return
	}
	if err != nil {
		f := connect.AsFailure(err)
		if f.Status == http.StatusBadRequest {
			s.errorPage(w, f.Status, "Budget not changed", f.Msg+" Nothing was changed.", "/", "Back to connections")
			return
		}
		s.storeErrorPage(w, err)
		return
	}
	msg := "budget_set"
	if v == nil {
		msg = "budget_cleared"
	}
	http.Redirect(w, r, "/?msg="+msg+"&name="+url.QueryEscape(c.Name), http.StatusSeeOther)
}
