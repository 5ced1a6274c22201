namespace Serving.Engine;

/// The order waiting requests are admitted in and running ones keep their blocks (vLLM's --scheduling-policy).
public enum SchedulingPolicy
{
    /// First come, first served; a request's priority must be 0.
    Fcfs,
    /// By each request's priority (lower first), then arrival; when blocks run out, the lowest-priority running
    /// sequence (the latest of equals) is preempted first.
    Priority,
}
