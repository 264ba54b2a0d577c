//! Recording a core's steps for trace validation (`crate::runtime::trace`): off
//! unless a tracer is set; and the timeline of its steps
//! (`crate::runtime::timeline`): off unless one is set.

use super::*;

impl Core {
    /// Marks when each step happens into `timeline` from now on.
    pub fn set_timeline(&mut self, timeline: Timeline) {
        self.timeline = Some(Box::new(timeline));
    }

    /// The timeline, if one is set (the shell marks its own steps in it).
    pub fn timeline(&mut self) -> Option<&mut Timeline> {
        self.timeline.as_deref_mut()
    }

    /// Takes the timeline away (to write it when the loop stops).
    pub fn take_timeline(&mut self) -> Option<Box<Timeline>> {
        self.timeline.take()
    }

    /// Records every actor step from now on into `tracer` (see
    /// [`crate::runtime::trace`]), starting with a [`Record::Node`] that says who this
    /// is; set it before [`Event::Start`]. Step numbers count from 1 again.
    pub fn set_tracer(&mut self, mut tracer: Box<dyn Tracer>) {
        tracer.record(&Record::Node {
            name: self.name.clone(),
            role: self.actor.name(),
            id: usize::from(self.id) as u64,
            actor: self.actor.clone(),
        });
        self.trace = Some(Trace {
            tracer,
            seq: 0,
            durable: 0,
        });
    }

    /// Tells the tracer (if any) that every save handed out by [`Core::ready`]
    /// so far is durable: the shell calls it after each fsync.
    pub fn synced(&mut self, now: Instant) {
        if let Some(t) = &mut self.trace {
            if t.durable < t.seq {
                t.durable = t.seq;
                let at = t.tracer.time(now);
                t.tracer.record(&Record::Durable { seq: t.seq, t: at });
            }
        }
    }

    /// Records one step (if tracing): `event` and the commands `out`, and the
    /// digest of the state after it.
    pub(super) fn trace_step(
        &mut self,
        now: Instant,
        event: impl FnOnce() -> trace::Event,
        out: &Out<Node>,
    ) {
        let Some(t) = &mut self.trace else { return };
        t.seq += 1;
        let step = trace::Step {
            seq: t.seq,
            t: t.tracer.time(now),
            event: event(),
            cmds: trace::cmds(out),
            state: trace::digest(self.state.as_ref().expect("a step follows the start")),
        };
        t.tracer.record(&Record::Step(step));
    }
}
