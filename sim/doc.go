// Package sim is a seeded synthetic live-streaming world (users, streamers,
// schedules, watching, gifting, following) used for demos, tests and load.
package sim
