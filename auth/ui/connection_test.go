package ui

import (
	"testing"
)

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{1935006, "MTUs", "1,935,006 MTUs"},
		{1523.40715, "USD", "1,523.41 USD"},
		{-1234.5, "EUR", "-1,234.50 EUR"},
		{99.5, "%", "99.5%"},
		{7, "", "7"},
		{123, "", "123"},
		{0.25, "", "0.25"},
	} {
		if got := formatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

func TestPercentOf(t *testing.T) {
	for _, tc := range []struct {
		v, limit float64
		want     string
	}{{0.3, 46.54, "<1%"}, {0, 10, "0%"}, {99.5, 100, "99%"}, {100, 100, "100%"}, {150, 100, "150%"}, {31245, 50000, "62%"}} {
		if got := percentOf(tc.v, tc.limit); got != tc.want {
			t.Errorf("percentOf(%v, %v) = %q, want %q", tc.v, tc.limit, got, tc.want)
		}
	}
}
