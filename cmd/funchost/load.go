package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// loaded is a function app ready to serve.
type loaded struct {
	app      *app
	env      *appEnv
	settings localSettings
	router   *router
	loc      *time.Location
	timers   []*timerState
}

// loadApp reads and validates everything the host needs from the app at
// root, logging what func start would warn about. Errors wrap errConfig.
func loadApp(root string, getenv func(string) string, now time.Time, log *slog.Logger) (*loaded, error) {
	a, err := loadHost(root)
	if err != nil {
		return nil, err
	}
	settings, err := loadSettings(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	env := newAppEnv(settings.Values, getenv)
	if settings.Source == "" {
		log.Warn("no local.settings.json or local.settings.example.json in the app root: no app settings")
	} else {
		log.Info("app settings from " + settings.Source)
	}
	for _, k := range env.skipped {
		log.Warn(fmt.Sprintf("Skipping '%s' from local settings as it's already defined in current environment variables.", k))
	}
	fns, disabled, err := loadFunctions(root, func(name string) bool {
		v, _ := env.lookup("AzureWebJobs." + name + ".Disabled")
		return isTrue(v)
	})
	if err != nil {
		return nil, err
	}
	for _, name := range disabled {
		log.Info("function disabled", "function", name)
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("%w: no functions under %s (each function is a folder with a function.json)", errConfig, root)
	}
	a.Functions = fns
	rt, err := a.buildRouter()
	if err != nil {
		return nil, err
	}
	if len(rt.routes) > 0 && !a.Forwarding {
		return nil, fmt.Errorf("%w: host.json customHandler.enableForwardingHttpRequest is not true: the local host supports HTTP functions in forwarding mode only (the handler receives the original request at its route under /%s)", errConfig, a.RoutePrefix)
	}
	loc := time.Local
	if tz, _ := env.lookup("WEBSITE_TIME_ZONE"); tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("%w: WEBSITE_TIME_ZONE %q: %w", errConfig, tz, err)
		}
	}
	states, err := newTimers(a.Functions, env.lookup, loc, now)
	if err != nil {
		return nil, err
	}
	if a.hasTrigger(triggerTimer) || a.hasTrigger(triggerEventGrid) {
		if v, _ := env.lookup("AzureWebJobsStorage"); v == "" {
			log.Warn("AzureWebJobsStorage is empty: func start would refuse this app (timer and Event Grid triggers need storage); the local host keeps schedule status in memory instead")
		}
	}
	if v, ok := env.lookup("FUNCTIONS_WORKER_RUNTIME"); ok && !strings.EqualFold(v, "custom") {
		log.Warn("FUNCTIONS_WORKER_RUNTIME should be \"custom\" for a custom handler", "value", v)
	}
	return &loaded{app: a, env: env, settings: settings, router: rt, loc: loc, timers: states}, nil
}
