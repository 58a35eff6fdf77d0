package client

import (
	"fmt"
	"strings"

	"github.com/caisson/caisson/api"
)

// PluginError is an error a plugin reported: its {"Err":"..."}, or, for an
// answer that is not JSON, the HTTP status and the start of the body.
type PluginError struct {
	Plugin string // the plugin's name
	Method string // "VolumeDriver.Mount"
	Msg    string // what the plugin said
	Status int    // the HTTP status; 200 when a 200 answer carried an Err

	// fromPlugin is set when Msg is the plugin's own Err, not a raw body.
	fromPlugin bool
}

// Error returns `plugin "NAME": VolumeDriver.Mount: MSG`.
func (e *PluginError) Error() string {
	return fmt.Sprintf("plugin %q: %s: %s", e.Plugin, e.Method, e.Msg)
}

// Is makes a plugin's "not found" message (there is no error code in the
// protocol) match api.ErrNotFound. A raw body, such as the 404 of an endpoint
// the plugin lacks, does not.
func (e *PluginError) Is(target error) bool {
	return target == api.ErrNotFound && e.fromPlugin && notFoundMessage(e.Msg)
}

// notFoundPhrases are what plugins say when a volume does not exist
// (go-plugins-helpers drivers, the local driver's "no such volume", ...).
var notFoundPhrases = []string{"not found", "no such volume", "doesn't exist", "does not exist"}

func notFoundMessage(msg string) bool {
	msg = strings.ToLower(msg)
	for _, p := range notFoundPhrases {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
