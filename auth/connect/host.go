package connect

import (
	"net"
	"net/http"
	"strings"

	"github.com/saas-exporter/saas_exporter/auth/session"
)

// WrongHost returns the address of this page at external_url when the
// browser certainly opened the exporter at another host (127.0.0.1 vs
// localhost, another port): vendors send the browser back to external_url,
// where it has neither the session nor the flow cookie, so a redirect
// flow started here fails at the callback. Behind a reverse proxy the
// request's Host is not what the browser used, so proxied requests (and a
// loopback Host for a non-loopback external_url, a proxy on the same
// machine) are never called wrong.
func (s *Service) WrongHost(r *http.Request) string {
	if r.Header.Get("X-Forwarded-Host") != "" || r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
		return ""
	}
	got, want := hostPort(r.Host, s.external.Scheme), hostPort(s.external.Host, s.external.Scheme)
	if got == want || (loopbackHost(got) && !loopbackHost(want)) {
		return ""
	}
	return s.c.ExternalURL + session.LocalPath(r.URL.RequestURI())
}

// hostPort lower-cases host and adds the scheme's default port.
func hostPort(host, scheme string) string {
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err != nil {
		if scheme == "https" {
			return net.JoinHostPort(strings.Trim(host, "[]"), "443")
		}
		return net.JoinHostPort(strings.Trim(host, "[]"), "80")
	}
	return host
}

func loopbackHost(hp string) bool {
	h, _, _ := net.SplitHostPort(hp)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// WrongHostMessage says why a redirect flow cannot start at this host.
func (s *Service) WrongHostMessage(r *http.Request) string {
	return "This page was opened at " + r.Host + ", but the exporter's external_url is " + s.c.ExternalURL +
		". Vendors send the browser back to external_url, where this browser has none of the cookies set here " +
		"(sign-in, connection in progress), so connecting by signing in at the vendor would fail there. Open the exporter at " +
		s.c.ExternalURL + " and start again (or set external_url to the address you use)."
}
