package dev.beamllama.model.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The inference engine: requests are submitted from any thread and complete asynchronously. One
 * engine thread loops: admit new requests, let the {@link Scheduler} pick the step's chunks, let
 * the {@link ModelRunner} compute them and sample, then append tokens and finish the sequences that
 * hit a stop token or their length. Sequences from all callers share every step.
 */
public final class LlmEngine implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(LlmEngine.class.getName());

  private final ModelRunner runner;
  private final Scheduler scheduler;
  private final StepBatch batch;
  private final int[] stopTokenIds;
  private final LinkedBlockingQueue<Sequence> incoming = new LinkedBlockingQueue<>();
  private final Thread loop;
  private final EngineStats stats = new EngineStats();
  private final List<StepListener> stepListeners = new CopyOnWriteArrayList<>();
  private volatile boolean closed;

  /**
   * Told about every computed step, on the engine thread, so it must be cheap: it is how a job
   * samples batch occupancy and throughput over time without the engine keeping a history.
   */
  @FunctionalInterface
  public interface StepListener {
    /** {@code sequences} shared the step, {@code promptTokens} of its tokens were prompt, {@code sampledTokens} were drawn. */
    void onStep(int sequences, int promptTokens, int sampledTokens, long nanos);
  }

  public LlmEngine(ModelRunner runner, EngineOptions options, int[] stopTokenIds) {
    if ((long) runner.kvBlocks() * runner.blockSize() < runner.maxSequenceLength()) {
      throw new IllegalArgumentException("the KV cache (" + runner.kvBlocks() + " blocks of " + runner.blockSize()
          + ") cannot hold one sequence of the maximum length " + runner.maxSequenceLength());
    }
    this.runner = runner;
    this.scheduler = new Scheduler(options.maxNumSeqs(), options.maxBatchTokens(),
        new BlockManager(runner.kvBlocks(), runner.blockSize()));
    this.batch = new StepBatch(options.maxBatchTokens(), options.maxNumSeqs(), runner.blockSize(), runner.maxSequenceLength());
    this.stopTokenIds = stopTokenIds.clone();
    this.loop = Thread.ofPlatform().name("llm-engine").daemon(true).unstarted(this::run);
    loop.start();
  }

  /** Queues {@code request}; the future fails with {@link InvalidRequestException} if it cannot run. */
  public CompletableFuture<GenerationResult> submit(GenerationRequest request) {
    return submit(request, TokenListener.NONE);
  }

  public CompletableFuture<GenerationResult> submit(GenerationRequest request, TokenListener listener) {
    String problem = validate(request.promptIds());
    if (problem != null) {
      return CompletableFuture.failedFuture(new InvalidRequestException("request " + request.id() + ": " + problem));
    }
    if (closed) {
      return CompletableFuture.failedFuture(new IllegalStateException("engine is closed"));
    }
    int maxLength = (int) Math.min((long) request.promptIds().length + request.params().maxNewTokens(), runner.maxSequenceLength());
    Sequence seq = new Sequence(request, maxLength, listener);
    incoming.add(seq);
    return seq.result;
  }

  /** Submits and waits. */
  public GenerationResult generate(GenerationRequest request) {
    try {
      return submit(request).get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CancellationException("interrupted");
    } catch (ExecutionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : new CompletionException(e.getCause());
    }
  }

  /** Logits at every prompt position (for parity checks), outside the batching loop. */
  public float[][] promptLogits(int[] promptIds) {
    String problem = validate(promptIds);
    if (problem != null) {
      throw new InvalidRequestException(problem);
    }
    synchronized (runner) {
      return runner.promptLogits(promptIds);
    }
  }

  private String validate(int[] promptIds) {
    if (promptIds.length == 0) {
      return "empty prompt";
    }
    for (int id : promptIds) {
      if (id < 0 || id >= runner.vocabularySize()) {
        return "token id " + id + " is outside the model's vocabulary [0, " + runner.vocabularySize() + ")";
      }
    }
    if (promptIds.length >= runner.maxSequenceLength()) {
      return "prompt of " + promptIds.length + " tokens leaves no room to generate: the context holds "
          + runner.maxSequenceLength() + " tokens";
    }
    return null;
  }

  public ModelRunner runner() {
    return runner;
  }

  public EngineStats stats() {
    return stats;
  }

  public void addStepListener(StepListener listener) {
    stepListeners.add(listener);
  }

  public void removeStepListener(StepListener listener) {
    stepListeners.remove(listener);
  }

  private void run() {
    try {
      while (!closed) {
        admitIncoming();
        if (!scheduler.hasWork()) {
          continue;
        }
        step();
      }
    } catch (InterruptedException e) {
      // closing
    } catch (Throwable t) {
      LOG.log(Level.SEVERE, "engine loop died", t);
      closed = true;
    } finally {
      failAll(new CancellationException("engine closed"));
    }
  }

  private void admitIncoming() throws InterruptedException {
    if (!scheduler.hasWork()) {
      Sequence first = incoming.take(); // idle: sleep until a request arrives
      scheduler.add(first);
    }
    List<Sequence> arrived = new ArrayList<>();
    incoming.drainTo(arrived);
    arrived.forEach(scheduler::add);
  }

  private void step() {
    List<ScheduledChunk> chunks = scheduler.schedule();
    stats.preemptions.set(scheduler.preemptions());
    if (chunks.isEmpty()) {
      return;
    }
    long now = System.nanoTime();
    for (ScheduledChunk chunk : chunks) {
      if (chunk.sequence().firstScheduledNanos == 0) {
        chunk.sequence().firstScheduledNanos = now;
      }
    }
    batch.prepare(chunks);
    int[] sampled;
    try {
      synchronized (runner) {
        sampled = runner.step(batch);
      }
    } catch (RuntimeException | Error e) {
      LOG.log(Level.WARNING, "model step failed; failing its " + chunks.size() + " sequences", e);
      for (ScheduledChunk chunk : chunks) {
        scheduler.finish(chunk.sequence());
        chunk.sequence().result.completeExceptionally(e);
      }
      return;
    }
    long nanos = System.nanoTime() - now;
    int promptTokens = 0;
    for (ScheduledChunk chunk : chunks) {
      promptTokens += promptPart(chunk);
      chunk.sequence().markComputed(chunk.length());
    }
    stats.recordStep(chunks, promptTokens, batch.samples(), nanos);
    tellListeners(chunks.size(), promptTokens, batch.samples(), nanos);
    for (int i = 0; i < batch.samples(); i++) {
      accept(batch.sequence(i), sampled[i]);
    }
  }

  private static int promptPart(ScheduledChunk chunk) {
    return Math.max(0, Math.min(chunk.start() + chunk.length(), chunk.sequence().promptLength()) - chunk.start());
  }

  /** A failing listener is dropped rather than allowed to stop generation: it only observes. */
  private void tellListeners(int sequences, int promptTokens, int sampledTokens, long nanos) {
    for (StepListener listener : stepListeners) {
      try {
        listener.onStep(sequences, promptTokens, sampledTokens, nanos);
      } catch (RuntimeException e) {
        LOG.log(Level.WARNING, "step listener failed; removing it", e);
        stepListeners.remove(listener);
      }
    }
  }

  private void accept(Sequence seq, int token) {
    if (seq.firstTokenNanos == 0) {
      seq.firstTokenNanos = System.nanoTime();
    }
    seq.append(token);
    try {
      seq.listener.onToken(token);
    } catch (RuntimeException e) {
      scheduler.finish(seq);
      seq.result.completeExceptionally(e);
      return;
    }
    FinishReason reason = isStop(token) ? FinishReason.STOP : seq.length() >= seq.maxLength() ? FinishReason.LENGTH : null;
    if (reason != null) {
      scheduler.finish(seq);
      stats.finishedSequences.incrementAndGet();
      long end = System.nanoTime();
      seq.result.complete(new GenerationResult(seq.request.id(), seq.generated(), reason, seq.promptLength(),
          seq.firstScheduledNanos - seq.submittedNanos, seq.firstTokenNanos - seq.submittedNanos, end - seq.submittedNanos));
    }
  }

  private boolean isStop(int token) {
    for (int stop : stopTokenIds) {
      if (stop == token) {
        return true;
      }
    }
    return false;
  }

  private void failAll(RuntimeException cause) {
    for (Sequence seq : scheduler.all()) {
      scheduler.finish(seq);
      seq.result.completeExceptionally(cause);
    }
    Sequence seq;
    while ((seq = incoming.poll()) != null) {
      seq.result.completeExceptionally(cause);
    }
  }

  @Override
  public void close() {
    closed = true;
    loop.interrupt();
    try {
      loop.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    runner.close();
  }

  /** Counters for metrics and reports: steps, tokens and how full the batches were. */
  public static final class EngineStats {
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong promptTokens = new AtomicLong();
    private final AtomicLong sampledTokens = new AtomicLong();
    private final AtomicLong sequenceSlots = new AtomicLong();
    private final AtomicLong stepNanos = new AtomicLong();
    private final AtomicLong preemptions = new AtomicLong();
    private final AtomicLong maxSourcesPerStep = new AtomicLong();
    private final AtomicLong finishedSequences = new AtomicLong();

    void recordStep(List<ScheduledChunk> chunks, int stepPromptTokens, int stepSampledTokens, long nanos) {
      steps.incrementAndGet();
      long sources = chunks.stream().map(c -> c.sequence().request.source()).filter(java.util.Objects::nonNull).distinct().count();
      maxSourcesPerStep.accumulateAndGet(sources, Math::max);
      sequenceSlots.addAndGet(chunks.size());
      stepNanos.addAndGet(nanos);
      sampledTokens.addAndGet(stepSampledTokens);
      promptTokens.addAndGet(stepPromptTokens);
    }

    public long steps() {
      return steps.get();
    }

    public long promptTokens() {
      return promptTokens.get();
    }

    public long sampledTokens() {
      return sampledTokens.get();
    }

    /** Average number of sequences per step. */
    public double meanBatchSize() {
      long s = steps.get();
      return s == 0 ? 0 : (double) sequenceSlots.get() / s;
    }

    public long stepNanos() {
      return stepNanos.get();
    }

    /** The most distinct request sources (e.g. pipeline bundles) that shared one step. */
    public long maxSourcesPerStep() {
      return maxSourcesPerStep.get();
    }

    /** Sequences that ended with a stop token or at their length. */
    public long finishedSequences() {
      return finishedSequences.get();
    }

    /** Sequences evicted from the KV cache to be recomputed later. */
    public long preemptions() {
      return preemptions.get();
    }
  }
}
