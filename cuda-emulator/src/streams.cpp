// Streams, events, stream capture and graphs: the order in which queued work runs.
//
// Deferred execution. Work enqueued on a stream (kernels, async copies and memsets, cuBLAS
// GEMMs, event records) does not run when enqueued: it runs, in stream order, when the host
// synchronises (cuStreamSynchronize, cuEventSynchronize, cuCtxSynchronize, a synchronous copy to
// the host, cuMemFree, ...). A host read of a pinned buffer that an async copy targets therefore
// sees the old data until the host synchronises, as it may on a GPU; a missing synchronisation
// shows instead of passing by luck. CUDA_LAUNCH_BLOCKING=1 runs each operation at once, so an
// error surfaces at the call that caused it.
//
// Ordering between streams: each queued op lists the ops of other streams that must run first.
// The legacy default stream (NULL, CU_STREAM_LEGACY) waits for all work queued before on blocking
// streams (created without CU_STREAM_NON_BLOCKING), and they wait for work queued before on it;
// cuStreamWaitEvent makes the stream's next op wait for the event's record. run_until() runs an
// op after what it waits for, iteratively.
//
// Errors: an op that fails (illegal address, failed launch) makes its error the context's sticky
// error: the queued work of the context is dropped and every later call returns that error,
// until the primary context is reset (released to 0 references), as on a GPU.
//
// Queries: cuStreamQuery and cuEventQuery on unfinished work answer CUDA_ERROR_NOT_READY once,
// then run the work, so a polling loop ends.
//
// Capture: while a stream captures, its ops are recorded (with their arguments, as CUDA copies
// kernel parameters) into the capture's graph instead of queued; cuGraphLaunch queues the
// graph's ops as one op, replaying them in order. CUDA's capture rules are enforced:
// synchronising a capturing stream, unsafe calls (cuMemAlloc, cuMemFree, synchronous copies and
// memsets, cuCtxSynchronize) under the capture modes that forbid them, using the legacy stream
// while a blocking stream captures, and waiting on an event from outside the capture fail with
// CUDA's error and invalidate the capture. A plain cuEventRecord in a capture only marks the event
// (CUDA's CUDA_ERROR_CAPTURED_EVENT when queried); cuEventRecordWithFlags(CU_EVENT_RECORD_EXTERNAL)
// records a node that records the event on each launch. Not emulated: captures spanning several
// streams (fork/join through events) and external event waits in a capture (both refused with
// CUDA_ERROR_NOT_SUPPORTED).
#include <chrono>
#include <cstring>

#include "driver.h"

namespace cuda_emu {

struct Event {
  Context* ctx = nullptr;
  unsigned flags = 0;
  enum State { kNeverRecorded, kPending, kComplete, kCaptured } state = kNeverRecorded;
  std::shared_ptr<Stream> stream;  // of the pending record
  uint64_t seq = 0;                // its op
  uint64_t generation = 0;         // bumped per record, so an older record's op does not complete a newer one
  double time = 0;                 // seconds, when the record ran
  bool told_not_ready = false;
  std::weak_ptr<Capture> capture;  // state kCaptured: the capture it was recorded in
};

struct Node {
  Op op;
  std::shared_ptr<Event> records;  // an event record node (CU_EVENT_RECORD_EXTERNAL)
};

struct Capture {
  Stream* origin = nullptr;
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
  std::thread::id thread;
  bool invalidated = false;
  std::vector<Node> nodes;
};

struct Graph {
  std::vector<Node> nodes;
};

struct GraphExec {
  std::shared_ptr<const std::vector<Node>> nodes;
};

namespace {

std::map<Event*, std::shared_ptr<Event>> events;
std::set<Capture*> active_captures;
thread_local CUstreamCaptureMode thread_capture_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;

double now_seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

const char* mode_name(CUstreamCaptureMode mode) {
  switch (mode) {
    case CU_STREAM_CAPTURE_MODE_GLOBAL: return "global";
    case CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: return "thread-local";
    default: return "relaxed";
  }
}

// A failed op: its error becomes the context's, its queued work is dropped.
void fail_context(Context* ctx, CUresult rc, const std::string& message) {
  ctx->sticky = rc;
  report("%s: %s; the context is unusable from now on: every call returns this error until the primary context is "
         "released (a sticky error, as after a fault on a GPU)",
         message.c_str(), result_name(rc));
  auto drop = [](Stream& s) {
    s.pending.clear();
    s.completed = s.enqueued;
  };
  drop(*ctx->legacy);
  for (auto& [p, s] : ctx->streams) drop(*s);
}

CUresult execute(Context* ctx, Op& op) {
  std::string detail;
  CUresult rc = run_op(op, &detail);
  if (rc != CUDA_SUCCESS) fail_context(ctx, rc, op.what + ": " + detail);
  return rc;
}

void invalidate(Capture& c) { c.invalidated = true; }

// The blocking streams of ctx that capture: the legacy stream may not be used meanwhile.
Capture* blocking_capture(Context* ctx) {
  for (auto& [p, s] : ctx->streams)
    if (s->capture && s->blocking()) return s->capture.get();
  return nullptr;
}

std::shared_ptr<Event> event_of(CUevent handle, const char* call) {
  auto it = events.find((Event*)handle);
  if (it == events.end()) {
    report("%s: %p is not an event (destroyed, or never created)", call, (void*)handle);
    return nullptr;
  }
  return it->second;
}

CUresult captured_event(const char* call) {
  report("%s: the event was last recorded in a capturing stream (inside a capture it only orders work)", call);
  return CUDA_ERROR_CAPTURED_EVENT;
}

}  // namespace

CUresult run_op(const Op& op, std::string* detail) {
  // What the host does to issue work (checks, queues, copies, synchronisation) stays; only the
  // device's arithmetic is left out, so the host's own time per step can be measured.
  if (op.compute && settings().skip_compute) return CUDA_SUCCESS;
  auto start = std::chrono::steady_clock::now();
  CUresult rc = op.run(detail);
  if (!op.stat.empty()) record_time(op.stat, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return rc;
}

CUresult stream_of(Context* ctx, CUstream handle, std::shared_ptr<Stream>* out, const char* call) {
  if (handle == nullptr || handle == CU_STREAM_LEGACY) {
    *out = ctx->legacy;
    return CUDA_SUCCESS;
  }
  if (handle == CU_STREAM_PER_THREAD) {
    report("%s: CU_STREAM_PER_THREAD is not emulated: use the NULL stream or a created stream", call);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  auto it = ctx->streams.find((Stream*)handle);
  if (it == ctx->streams.end()) {
    report("%s: %p is not a stream of the current context (device %d): destroyed, never created, or another context's", call,
           (void*)handle, ctx->device);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  *out = it->second;
  return CUDA_SUCCESS;
}

CUresult enqueue_after(const std::shared_ptr<Stream>& stream, Op op, const std::shared_ptr<Stream>& after, uint64_t after_seq,
                       uint64_t* seq) {
  Context* ctx = stream->ctx;
  if (seq) *seq = 0;
  if (stream->capture) {
    if (stream->capture->invalidated) {
      report("%s: the stream's capture was invalidated by an earlier error: end it with cuStreamEndCapture", op.what.c_str());
      return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    stream->capture->nodes.push_back(Node{std::move(op), nullptr});
    return CUDA_SUCCESS;
  }
  if (stream->legacy) {
    if (Capture* c = blocking_capture(ctx)) {
      report("%s on the legacy (NULL) stream while blocking stream %p captures: it would wait for the capture; the capture is "
             "invalidated",
             op.what.c_str(), (void*)c->origin);
      invalidate(*c);
      return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    }
  }
  Stream::Pending p{std::move(op), stream->enqueued + 1, {}};
  if (stream->legacy) {
    for (auto& [ptr, s] : ctx->streams)
      if (s->blocking() && !s->idle()) p.waits.emplace_back(s, s->enqueued);
  } else if (stream->blocking() && !ctx->legacy->idle()) {
    p.waits.emplace_back(ctx->legacy, ctx->legacy->enqueued);
  }
  if (after && after->completed < after_seq) p.waits.emplace_back(after, after_seq);
  stream->pending.push_back(std::move(p));
  stream->enqueued++;
  if (seq) *seq = stream->enqueued;
  if (settings().launch_blocking) return run_until(stream, stream->enqueued);
  return CUDA_SUCCESS;
}

CUresult enqueue(const std::shared_ptr<Stream>& stream, Op op, uint64_t* seq) {
  return enqueue_after(stream, std::move(op), nullptr, 0, seq);
}

CUresult run_until(const std::shared_ptr<Stream>& stream, uint64_t seq) {
  Context* ctx = stream->ctx;
  if (ctx->sticky) return ctx->sticky;
  std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> stack{{stream, seq}};
  while (!stack.empty()) {
    std::shared_ptr<Stream> s = stack.back().first;
    uint64_t target = stack.back().second;
    if (s->completed >= target || s->pending.empty()) {
      stack.pop_back();
      continue;
    }
    Stream::Pending& front = s->pending.front();
    bool waiting = false;
    for (auto& [other, other_seq] : front.waits) {
      if (other->completed < other_seq) {
        stack.emplace_back(other, other_seq);
        waiting = true;
        break;
      }
    }
    if (waiting) continue;
    Stream::Pending item = std::move(front);
    s->pending.pop_front();
    s->completed = item.seq;
    CUresult rc = execute(s->ctx, item.op);
    if (rc != CUDA_SUCCESS) return rc;
  }
  return ctx->sticky;
}

CUresult run_all(Context* ctx) {
  if (!ctx->legacy) return CUDA_SUCCESS;
  CUresult rc = run_until(ctx->legacy, ctx->legacy->enqueued);
  std::vector<std::shared_ptr<Stream>> streams;
  for (auto& [p, s] : ctx->streams) streams.push_back(s);
  for (auto& s : streams)
    if (rc == CUDA_SUCCESS) rc = run_until(s, s->enqueued);
  return rc ? rc : ctx->sticky;
}

void invalidate_capture(Stream& s) { invalidate(*s.capture); }

CUresult check_unsafe_during_capture(const char* call) {
  if (active_captures.empty() || thread_capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED) return CUDA_SUCCESS;
  std::thread::id me = std::this_thread::get_id();
  std::vector<Capture*> conflicts;
  for (Capture* c : active_captures) {
    if (c->invalidated) continue;
    bool own = c->thread == me && c->mode != CU_STREAM_CAPTURE_MODE_RELAXED;
    bool others = c->thread != me && c->mode == CU_STREAM_CAPTURE_MODE_GLOBAL && thread_capture_mode == CU_STREAM_CAPTURE_MODE_GLOBAL;
    if (own || others) conflicts.push_back(c);
  }
  if (conflicts.empty()) return CUDA_SUCCESS;
  for (Capture* c : conflicts) {
    report("%s while stream %p captures in %s mode: not permitted during stream capture; the capture is invalidated", call,
           (void*)c->origin, mode_name(c->mode));
    invalidate(*c);
  }
  return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

void destroy_streams_events_graphs(Context* ctx, size_t counts[4]) {
  counts[0] = ctx->streams.size();
  counts[1] = ctx->events.size();
  counts[2] = ctx->graphs.size();
  counts[3] = ctx->execs.size();
  for (auto& [p, s] : ctx->streams) {
    if (s->capture) active_captures.erase(s->capture.get());
    s->pending.clear();
    s->completed = s->enqueued;
  }
  ctx->streams.clear();
  for (Event* e : ctx->events) events.erase(e);
  ctx->events.clear();
  for (Graph* g : ctx->graphs) delete g;
  ctx->graphs.clear();
  for (GraphExec* x : ctx->execs) delete x;
  ctx->execs.clear();
}

}  // namespace cuda_emu

using namespace cuda_emu;

// ---- Streams

CUDA_EMU_EXPORT CUresult cuStreamCreate(CUstream* phStream, unsigned int Flags) {
  CUDA_EMU_CONTEXT("cuStreamCreate");
  if (phStream == nullptr || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING) != 0) {
    report("cuStreamCreate: flags must be CU_STREAM_DEFAULT or CU_STREAM_NON_BLOCKING, not %u", Flags);
    return CUDA_ERROR_INVALID_VALUE;
  }
  auto s = std::make_shared<Stream>();
  s->ctx = ctx;
  s->flags = Flags;
  ctx->streams[s.get()] = s;
  *phStream = (CUstream)s.get();
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuStreamGetFlags(CUstream hStream, unsigned int* flags) {
  CUDA_EMU_CONTEXT("cuStreamGetFlags");
  CUDA_EMU_STREAM(hStream, s, "cuStreamGetFlags");
  if (flags == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *flags = s->flags;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuStreamQuery(CUstream hStream) {
  CUDA_EMU_CONTEXT("cuStreamQuery");
  CUDA_EMU_STREAM(hStream, s, "cuStreamQuery");
  if (s->capture) {
    report("cuStreamQuery of a capturing stream: not permitted during capture; the capture is invalidated");
    invalidate(*s->capture);
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  if (s->idle()) return CUDA_SUCCESS;
  // Not ready the first time it is asked about this work; then the work runs.
  if (s->told_not_ready != s->enqueued) {
    s->told_not_ready = s->enqueued;
    return CUDA_ERROR_NOT_READY;
  }
  return run_until(s, s->enqueued);
}

CUDA_EMU_EXPORT CUresult cuStreamSynchronize(CUstream hStream) {
  CUDA_EMU_CONTEXT("cuStreamSynchronize");
  CUDA_EMU_STREAM(hStream, s, "cuStreamSynchronize");
  if (s->capture) {
    report("cuStreamSynchronize of a capturing stream: not permitted during capture; the capture is invalidated");
    invalidate(*s->capture);
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  return run_until(s, s->enqueued);
}

CUDA_EMU_EXPORT CUresult cuStreamDestroy_v2(CUstream hStream) {
  CUDA_EMU_CONTEXT("cuStreamDestroy");
  if (hStream == nullptr || hStream == CU_STREAM_LEGACY) {
    report("cuStreamDestroy: the legacy (NULL) stream cannot be destroyed");
    return CUDA_ERROR_INVALID_HANDLE;
  }
  CUDA_EMU_STREAM(hStream, s, "cuStreamDestroy");
  if (s->capture) {
    report("cuStreamDestroy of a capturing stream: end the capture first");
    invalidate(*s->capture);
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  // CUDA lets queued work finish after the call; the emulator runs it now.
  CUresult rc = run_until(s, s->enqueued);
  ctx->streams.erase(s.get());
  return rc;
}

CUDA_EMU_EXPORT CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags) {
  CUDA_EMU_CONTEXT("cuStreamWaitEvent");
  CUDA_EMU_STREAM(hStream, s, "cuStreamWaitEvent");
  std::shared_ptr<Event> e = event_of(hEvent, "cuStreamWaitEvent");
  if (!e) return CUDA_ERROR_INVALID_HANDLE;
  if ((Flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL) != 0) return CUDA_ERROR_INVALID_VALUE;
  if (s->capture) {
    Capture& c = *s->capture;
    if (c.invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    if (e->state == Event::kCaptured) {
      if (e->capture.lock() == s->capture) return CUDA_SUCCESS;  // recorded earlier in this capture: already in order
      report("cuStreamWaitEvent: the event was recorded in another capture: it would merge two captures; the capture is invalidated");
      invalidate(c);
      return CUDA_ERROR_STREAM_CAPTURE_MERGE;
    }
    if (Flags & CU_EVENT_WAIT_EXTERNAL) {
      report("cuStreamWaitEvent with CU_EVENT_WAIT_EXTERNAL in a capture: event wait nodes are not emulated");
      return CUDA_ERROR_NOT_SUPPORTED;
    }
    report("cuStreamWaitEvent in a capture on an event recorded outside it: a dependency across the capture boundary; the capture "
           "is invalidated");
    invalidate(c);
    return CUDA_ERROR_STREAM_CAPTURE_ISOLATION;
  }
  if (e->state == Event::kCaptured) {
    if (auto c = e->capture.lock()) invalidate(*c);
    report("cuStreamWaitEvent on an event recorded in a capture: the stream would join the capture (captures across several "
           "streams are not emulated); the capture is invalidated");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  if (e->state != Event::kPending || e->stream->completed >= e->seq) return CUDA_SUCCESS;
  return enqueue_after(s, Op{"cuStreamWaitEvent", "", [](std::string*) { return CUDA_SUCCESS; }}, e->stream, e->seq, nullptr);
}

// ---- Events

CUDA_EMU_EXPORT CUresult cuEventCreate(CUevent* phEvent, unsigned int Flags) {
  CUDA_EMU_CONTEXT("cuEventCreate");
  unsigned known = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
  if (phEvent == nullptr || (Flags & ~known) != 0 || ((Flags & CU_EVENT_INTERPROCESS) && !(Flags & CU_EVENT_DISABLE_TIMING))) {
    report("cuEventCreate: invalid flags 0x%x", Flags);
    return CUDA_ERROR_INVALID_VALUE;
  }
  auto e = std::make_shared<Event>();
  e->ctx = ctx;
  e->flags = Flags;
  events[e.get()] = e;
  ctx->events.insert(e.get());
  *phEvent = (CUevent)e.get();
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags) {
  CUDA_EMU_CONTEXT("cuEventRecord");
  CUDA_EMU_STREAM(hStream, s, "cuEventRecord");
  std::shared_ptr<Event> e = event_of(hEvent, "cuEventRecord");
  if (!e) return CUDA_ERROR_INVALID_HANDLE;
  if ((flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL) != 0) return CUDA_ERROR_INVALID_VALUE;
  if (e->ctx != ctx) {
    report("cuEventRecord: the event belongs to device %d's context, the stream to device %d's", e->ctx->device, ctx->device);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  if (s->capture) {
    if (s->capture->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    if (flags & CU_EVENT_RECORD_EXTERNAL) {
      s->capture->nodes.push_back(Node{Op{"event record", "", nullptr}, e});
    } else {
      e->state = Event::kCaptured;
      e->capture = s->capture;
    }
    return CUDA_SUCCESS;
  }
  uint64_t generation = ++e->generation;
  Event::State before = e->state;
  e->state = Event::kPending;
  e->stream = s;
  e->seq = s->enqueued + 1;  // the record op's sequence number
  e->told_not_ready = false;
  CUresult rc = enqueue(s, Op{"event record", "", [e, generation](std::string*) {
                              if (e->generation == generation) {
                                e->state = Event::kComplete;
                                e->time = now_seconds();
                              }
                              return CUDA_SUCCESS;
                            }});
  if (rc != CUDA_SUCCESS && e->generation == generation && e->state == Event::kPending && s->completed < e->seq) e->state = before;
  return rc;
}

CUDA_EMU_EXPORT CUresult cuEventRecord(CUevent hEvent, CUstream hStream) { return cuEventRecordWithFlags(hEvent, hStream, 0); }

CUDA_EMU_EXPORT CUresult cuEventQuery(CUevent hEvent) {
  CUDA_EMU_CONTEXT("cuEventQuery");
  std::shared_ptr<Event> e = event_of(hEvent, "cuEventQuery");
  if (!e) return CUDA_ERROR_INVALID_HANDLE;
  if (e->ctx->sticky) return e->ctx->sticky;
  switch (e->state) {
    case Event::kCaptured: return captured_event("cuEventQuery");
    case Event::kPending:
      if (!e->told_not_ready) {
        e->told_not_ready = true;
        return CUDA_ERROR_NOT_READY;
      }
      return run_until(e->stream, e->seq);
    default: return CUDA_SUCCESS;
  }
}

CUDA_EMU_EXPORT CUresult cuEventSynchronize(CUevent hEvent) {
  CUDA_EMU_CONTEXT("cuEventSynchronize");
  std::shared_ptr<Event> e = event_of(hEvent, "cuEventSynchronize");
  if (!e) return CUDA_ERROR_INVALID_HANDLE;
  if (e->state == Event::kCaptured) return captured_event("cuEventSynchronize");
  if (e->state == Event::kPending) return run_until(e->stream, e->seq);
  return e->ctx->sticky;
}

CUDA_EMU_EXPORT CUresult cuEventElapsedTime_v2(float* pMilliseconds, CUevent hStart, CUevent hEnd) {
  CUDA_EMU_CONTEXT("cuEventElapsedTime");
  if (pMilliseconds == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::shared_ptr<Event> a = event_of(hStart, "cuEventElapsedTime"), b = event_of(hEnd, "cuEventElapsedTime");
  if (!a || !b) return CUDA_ERROR_INVALID_HANDLE;
  if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) {
    report("cuEventElapsedTime: an event created with CU_EVENT_DISABLE_TIMING has no time");
    return CUDA_ERROR_INVALID_HANDLE;
  }
  if (a->state == Event::kCaptured || b->state == Event::kCaptured) return captured_event("cuEventElapsedTime");
  if (a->state == Event::kNeverRecorded || b->state == Event::kNeverRecorded) {
    report("cuEventElapsedTime: the %s event was never recorded", a->state == Event::kNeverRecorded ? "start" : "end");
    return CUDA_ERROR_INVALID_HANDLE;
  }
  if (a->state == Event::kPending || b->state == Event::kPending) return CUDA_ERROR_NOT_READY;
  *pMilliseconds = (float)((b->time - a->time) * 1e3);
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuEventDestroy_v2(CUevent hEvent) {
  CUDA_EMU_LOCK;
  Context* ctx = nullptr;
  CUresult rc = current_context(&ctx, "cuEventDestroy");
  if (rc != CUDA_SUCCESS) return rc;
  std::shared_ptr<Event> e = event_of(hEvent, "cuEventDestroy");
  if (!e) return CUDA_ERROR_INVALID_HANDLE;
  // Queued records keep the event alive until they run, as CUDA releases it once complete.
  e->ctx->events.erase(e.get());
  events.erase(e.get());
  return CUDA_SUCCESS;
}

// ---- Capture and graphs

CUDA_EMU_EXPORT CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode) {
  CUDA_EMU_CONTEXT("cuStreamBeginCapture");
  CUDA_EMU_STREAM(hStream, s, "cuStreamBeginCapture");
  if (s->legacy) {
    report("cuStreamBeginCapture: the legacy (NULL) stream cannot capture");
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  if (mode != CU_STREAM_CAPTURE_MODE_GLOBAL && mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && mode != CU_STREAM_CAPTURE_MODE_RELAXED)
    return CUDA_ERROR_INVALID_VALUE;
  if (s->capture) {
    report("cuStreamBeginCapture: the stream already captures");
    return CUDA_ERROR_ILLEGAL_STATE;
  }
  s->capture = std::make_shared<Capture>();
  s->capture->origin = s.get();
  s->capture->mode = mode;
  s->capture->thread = std::this_thread::get_id();
  active_captures.insert(s->capture.get());
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuStreamEndCapture(CUstream hStream, CUgraph* phGraph) {
  CUDA_EMU_CONTEXT("cuStreamEndCapture");
  CUDA_EMU_STREAM(hStream, s, "cuStreamEndCapture");
  if (phGraph == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!s->capture) {
    report("cuStreamEndCapture: the stream does not capture");
    return CUDA_ERROR_ILLEGAL_STATE;
  }
  std::shared_ptr<Capture> c = s->capture;
  if (c->mode != CU_STREAM_CAPTURE_MODE_RELAXED && c->thread != std::this_thread::get_id()) {
    report("cuStreamEndCapture: a %s-mode capture must be ended by the thread that began it", mode_name(c->mode));
    return CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
  }
  s->capture.reset();
  active_captures.erase(c.get());
  if (c->invalidated) {
    *phGraph = nullptr;
    return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
  }
  Graph* g = new Graph;
  g->nodes = std::move(c->nodes);
  ctx->graphs.insert(g);
  *phGraph = (CUgraph)g;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus* captureStatus) {
  CUDA_EMU_CONTEXT("cuStreamIsCapturing");
  CUDA_EMU_STREAM(hStream, s, "cuStreamIsCapturing");
  if (captureStatus == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (s->legacy) {
    if (blocking_capture(ctx)) return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
    *captureStatus = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
  }
  *captureStatus = !s->capture ? CU_STREAM_CAPTURE_STATUS_NONE
                   : s->capture->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                                             : CU_STREAM_CAPTURE_STATUS_ACTIVE;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode* mode) {
  if (mode == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (*mode != CU_STREAM_CAPTURE_MODE_GLOBAL && *mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && *mode != CU_STREAM_CAPTURE_MODE_RELAXED)
    return CUDA_ERROR_INVALID_VALUE;
  std::swap(*mode, thread_capture_mode);
  return CUDA_SUCCESS;
}

static Graph* graph_of(Context* ctx, CUgraph handle, const char* call) {
  Graph* g = (Graph*)handle;
  if (ctx->graphs.count(g) == 0) {
    report("%s: %p is not a graph of the current context (destroyed, or never created)", call, (void*)handle);
    return nullptr;
  }
  return g;
}

static GraphExec* exec_of(Context* ctx, CUgraphExec handle, const char* call) {
  GraphExec* x = (GraphExec*)handle;
  if (ctx->execs.count(x) == 0) {
    report("%s: %p is not an executable graph of the current context (destroyed, or never instantiated)", call, (void*)handle);
    return nullptr;
  }
  return x;
}

CUDA_EMU_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec* phGraphExec, CUgraph hGraph, unsigned long long flags) {
  CUDA_EMU_CONTEXT("cuGraphInstantiate");
  if (phGraphExec == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Graph* g = graph_of(ctx, hGraph, "cuGraphInstantiate");
  if (g == nullptr) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long accepted = CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH | CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD |
                                CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY;
  if (flags & ~accepted) {
    report("cuGraphInstantiate: flags 0x%llx: only AUTO_FREE_ON_LAUNCH, UPLOAD and USE_NODE_PRIORITY are emulated (as no-ops)", flags);
    return CUDA_ERROR_INVALID_VALUE;
  }
  GraphExec* x = new GraphExec;
  x->nodes = std::make_shared<const std::vector<Node>>(g->nodes);
  ctx->execs.insert(x);
  *phGraphExec = (CUgraphExec)x;
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream) {
  CUDA_EMU_CONTEXT("cuGraphLaunch");
  CUDA_EMU_STREAM(hStream, s, "cuGraphLaunch");
  GraphExec* x = exec_of(ctx, hGraphExec, "cuGraphLaunch");
  if (x == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::shared_ptr<const std::vector<Node>> nodes = x->nodes;
  if (s->capture) {  // a graph launched into a capture becomes part of it
    if (s->capture->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    for (const Node& n : *nodes) s->capture->nodes.push_back(n);
    return CUDA_SUCCESS;
  }
  // Event record nodes: the events are pending on this launch.
  auto generations = std::make_shared<std::vector<uint64_t>>(nodes->size(), 0);
  for (size_t i = 0; i < nodes->size(); i++) {
    if (Event* e = (*nodes)[i].records.get()) {
      (*generations)[i] = ++e->generation;
      e->state = Event::kPending;
      e->stream = s;
      e->seq = s->enqueued + 1;
      e->told_not_ready = false;
    }
  }
  Op launch{format("graph launch (%zu nodes)", nodes->size()), "", [nodes, generations](std::string* detail) {
              for (size_t i = 0; i < nodes->size(); i++) {
                const Node& node = (*nodes)[i];
                if (node.records) {
                  if (node.records->generation == (*generations)[i]) {
                    node.records->state = Event::kComplete;
                    node.records->time = now_seconds();
                  }
                  continue;
                }
                CUresult rc = run_op(node.op, detail);
                if (rc != CUDA_SUCCESS) {
                  *detail = format("node %zu (%s): ", i, node.op.what.c_str()) + *detail;
                  return rc;
                }
              }
              return CUDA_SUCCESS;
            }};
  return enqueue(s, std::move(launch));
}

CUDA_EMU_EXPORT CUresult cuGraphExecDestroy(CUgraphExec hGraphExec) {
  CUDA_EMU_CONTEXT("cuGraphExecDestroy");
  GraphExec* x = exec_of(ctx, hGraphExec, "cuGraphExecDestroy");
  if (x == nullptr) return CUDA_ERROR_INVALID_VALUE;
  ctx->execs.erase(x);
  delete x;  // queued launches hold the nodes
  return CUDA_SUCCESS;
}

CUDA_EMU_EXPORT CUresult cuGraphDestroy(CUgraph hGraph) {
  CUDA_EMU_CONTEXT("cuGraphDestroy");
  Graph* g = graph_of(ctx, hGraph, "cuGraphDestroy");
  if (g == nullptr) return CUDA_ERROR_INVALID_VALUE;
  ctx->graphs.erase(g);
  delete g;
  return CUDA_SUCCESS;
}

// ---- For libcublas.so.13 (not CUDA API; declared in cublas_bridge.h): cuBLAS's work goes through
// the same queues.

CUDA_EMU_EXPORT CUresult cuda_emulator_enqueue(CUstream hStream, const char* what, const char* stat,
                                               CUresult (*run)(void* data, char* detail, size_t detail_bytes), void* data,
                                               void (*free_data)(void*)) {
  std::shared_ptr<void> owned(data, free_data);
  CUDA_EMU_CONTEXT(what);
  CUDA_EMU_STREAM(hStream, s, what);
  Op op{what, stat, [run, owned](std::string* detail) {
          char text[1024] = "";
          CUresult rc = run(owned.get(), text, sizeof text);
          *detail = text;
          return rc;
        }, true};
  return enqueue(s, std::move(op));
}
