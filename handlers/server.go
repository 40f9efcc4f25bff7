package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"supportbot/sidebar"
)

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Routes is everything the server serves.
type Routes struct {
	Events *Events
	// Sidebar, if set (app mode), serves the sidebar page on POST /bitrix/sidebar and
	// its forms on POST /bitrix/sidebar/{new,rename,open}.
	Sidebar *Sidebar
	// Messenger, if set (no portal configured), serves the local portal and its
	// messenger page on GET /.
	Messenger *Messenger
	DB        Pinger
	Log       *slog.Logger
	// Metrics, if set, is served on GET /metrics.
	Metrics http.Handler
	// ObserveHTTP, if set, is told every request's route, status and duration.
	ObserveHTTP func(route string, status int, d time.Duration)
}

// NewServer builds the Echo instance with every route.
func NewServer(r Routes) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(middleware.Recover())
	if r.ObserveHTTP != nil {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				start := time.Now()
				err := next(c)
				status := c.Response().Status
				if he, ok := err.(*echo.HTTPError); ok && !c.Response().Committed {
					status = he.Code
				}
				route := c.Path() // the route pattern, not the raw URL: bounded
				if route == "" {
					route = "unmatched"
				}
				r.ObserveHTTP(route, status, time.Since(start))
				return err
			}
		})
	}
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := http.StatusInternalServerError
		msg := http.StatusText(code)
		if he, ok := err.(*echo.HTTPError); ok {
			code = he.Code
			msg = http.StatusText(code)
		} else {
			r.Log.Error("request failed", "path", c.Path(), "err", err)
		}
		_ = c.JSON(code, map[string]string{"error": msg})
	}
	e.POST("/bitrix/events", r.Events.Handle)
	if r.Sidebar != nil {
		e.POST("/bitrix/sidebar", r.Sidebar.Open)
		for _, form := range []string{sidebar.FormNew, sidebar.FormRename, sidebar.FormOpen} {
			e.POST("/bitrix/sidebar/"+form, r.Sidebar.Form(form))
		}
	}
	if r.Messenger != nil {
		r.Messenger.routes(e)
	}
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := r.DB.Ping(ctx); err != nil {
			r.Log.Warn("not ready", "err", err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	if r.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(r.Metrics))
	}
	return e
}

// HTTPServer wraps the handler with timeouts that keep slow clients from holding
// connections open.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}
