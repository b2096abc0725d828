// Package sim is a seeded synthetic live-streaming world (users, streamers,
// schedules, watching, gifting, following) used for demos, tests, load and
// end-to-end quality measurement.
//
// A World (New) is the static part: users with a Dirichlet-like taste over
// Categories, a language, a chronotype (daily rhythm), a visit rate and a
// generosity; streamers with one category, a language, a heavy-tailed
// (Pareto) popularity, a preferred start hour and a share of days on which
// they stream. Run plays it forward in event time: streamers go live on
// their daily schedules for 1-5 hours with days off; users arrive by
// hour-of-day intensity and choose among the streamers live at that moment
// by habit (the streamers they watched before, followed ones first) or by
// exploration (taste × language × popularity); they watch for a
// log-normal while, sometimes gift, follow after repeat visits, move on or
// leave. A user none of whose streamers is live often comes back when the
// favourite goes live, as a notification would bring them. Repeat viewing
// is about 60-80% of choices, as in real live streaming.
//
// Everything is drawn from PCG streams seeded by Config.Seed and processed
// in a fixed order, so the same Config and window give a byte-identical
// event stream. State is struct-of-arrays (tens of bytes per user and per
// streamer); live streamers are sampled by popularity from Fenwick trees
// per (category, language), so a visit costs O(log n) whatever the size.
//
// Run reports the ground truth of every decision (Choice: user, time,
// streamer, and the streamers live then) just before the decision's
// viewer.joined event; Evaluator scores a recommender's lists against it
// (availability-aware HR@K and NDCG@K: the candidates are the streamers
// live at that moment). History turns the event stream into history-table
// rows. RunLive starts a window for a consumer with no earlier state (it
// announces the streams already live and the viewers already watching
// them), and Pace plays events at real or accelerated speed.
//
// Users in Run never see a recommendation. How one would respond to a
// page shown at a decision is told apart: Choice.Affinity is the choice
// model's probability of each live streamer at that decision, and
// PageModel a position-biased choice over the page's streamers by those
// affinities (which position the user watches, if any), with no feedback
// into the world — for measuring recommenders online, A/B tests and
// interleaving (cmd/bench-experiments).
package sim
