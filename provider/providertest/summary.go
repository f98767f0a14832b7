package providertest

import (
	"fmt"
	"strings"

	"github.com/saas-exporter/saas_exporter/provider"
)

// Items renders summary items one per line, for comparing with a want:
// "group | label | value unit | text | limit | note".
func Items(items []provider.SummaryItem) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s | %s | %.6g %s | %s | %.6g | %s\n", it.Group, it.Label, it.Value, it.Unit, it.Text, it.Limit, it.Note)
	}
	return b.String()
}
