package azfunc

// TimerInfo is the value of a timer trigger binding.
//
// Its timestamps are [Time] values, so a timestamp the host wrote in an
// unexpected form becomes the zero time instead of failing the decode.
type TimerInfo struct {
	// Schedule describes the schedule; the host sends only the obsolete
	// AdjustForDST flag.
	Schedule Schedule `json:"Schedule"`
	// ScheduleStatus is nil when the schedule monitor is off (useMonitor
	// false, schedules more often than once a minute, or no storage).
	ScheduleStatus *ScheduleStatus `json:"ScheduleStatus"`
	// IsPastDue is true when this run is late, for example because the
	// host started after a missed occurrence.
	IsPastDue bool `json:"IsPastDue"`
}

// Schedule is the schedule part of [TimerInfo].
type Schedule struct {
	AdjustForDST bool `json:"AdjustForDST"`
}

// ScheduleStatus is the schedule monitor's record. Last is zero before the
// first run.
type ScheduleStatus struct {
	Last        Time `json:"Last"`
	Next        Time `json:"Next"`
	LastUpdated Time `json:"LastUpdated"`
}
