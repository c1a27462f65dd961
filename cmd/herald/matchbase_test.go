package main

import (
	"testing"

	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/topic"
)

// TestMatchBase checks the hub URL URL patterns are resolved against: hub_url, else
// resource_identifier when it is a hub URL, else the first host name of SERVER_NAME, else the placeholder.
func TestMatchBase(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.Config
		want string
	}{
		{config.Config{}, topic.DefaultHubURL},
		{config.Config{ServerNames: []string{"hub.example.com", "b.example.com"}}, "https://hub.example.com/.well-known/mercure"},
		{config.Config{ServerNames: []string{"hub.example.com"}, HTTPSPort: 8443}, "https://hub.example.com:8443/.well-known/mercure"},
		{config.Config{ServerNames: []string{"hub.example.com"}, HTTPSPort: 443}, "https://hub.example.com/.well-known/mercure"},
		{config.Config{ServerNames: []string{"*.example.com"}}, "https://*.example.com/.well-known/mercure"},
		{config.Config{ServerNames: []string{"a b"}}, topic.DefaultHubURL},
		{config.Config{ServerNames: []string{"hub.example.com"}, HubURL: "https://public.example/.well-known/mercure"}, "https://public.example/.well-known/mercure"},
		{config.Config{ServerNames: []string{"hub.example.com"}, ResourceIdentifier: "https://api.example/.well-known/mercure"}, "https://api.example/.well-known/mercure"},
		{config.Config{HubURL: "https://public.example/.well-known/mercure", ResourceIdentifier: "https://api.example/.well-known/mercure"}, "https://public.example/.well-known/mercure"},
		{config.Config{ServerNames: []string{"hub.example.com"}, ResourceIdentifier: "urn:herald:hub"}, "https://hub.example.com/.well-known/mercure"},
		// A resource identifier whose path is not the hub's would move the reserved namespace.
		{config.Config{ServerNames: []string{"hub.example.com"}, ResourceIdentifier: "https://api.example/"}, "https://hub.example.com/.well-known/mercure"},
		{config.Config{ServerNames: []string{"hub.example.com"}, ResourceIdentifier: "https://api.example/hub"}, "https://hub.example.com/.well-known/mercure"},
		{config.Config{ResourceIdentifier: "https://api.example/.well-known/mercure?x=1"}, topic.DefaultHubURL},
	} {
		if got := matchBase(tc.cfg); got != tc.want {
			t.Errorf("matchBase(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
		if _, err := topic.NewMatcherAt(1, matchBase(tc.cfg)); err != nil {
			t.Errorf("%q: %v", matchBase(tc.cfg), err)
		}
		// Whatever the configuration, the subscription events' topics stay reserved.
		m, _ := topic.NewMatcherAt(0, matchBase(tc.cfg))
		if m != nil && !m.Reserved(hub.SubscriptionsPath+"/exact/a/b") {
			t.Errorf("matchBase(%+v) = %q: subscription topics are not reserved", tc.cfg, matchBase(tc.cfg))
		}
	}
}
