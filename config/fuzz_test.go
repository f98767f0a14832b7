package config

import "testing"

// The loader never panics, and whatever it accepts is valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte("external_url: http://localhost:9888\nscrape:\n  timeout: 5s\n"))
	f.Add([]byte("vendors:\n  sendgrid:\n    api_url: ${HOME}\n"))
	f.Add([]byte("admins:\n  a: \"$2y$10$x\"\n"))
	f.Add([]byte("scrape: [1, 2]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if c.Scrape.Timeout <= 0 || c.Scrape.Concurrency <= 0 || c.ExternalURL == "" {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
	})
}
