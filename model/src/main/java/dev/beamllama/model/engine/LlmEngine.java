package dev.beamllama.model.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The inference engine: requests are submitted from any thread and complete asynchronously. One
 * engine thread loops: admit new requests, let the {@link Scheduler} pick the step's chunks, lay
 * them out in the {@link StepBatch}, launch it on the {@link ModelRunner}, then take the tokens of
 * the step before and finish the sequences that hit a stop token or their length. Sequences from all
 * callers share every step.
 *
 * <p>On a runner that {@link ModelRunner#overlapsSteps() overlaps steps} (a GPU), step n + 1 is laid
 * out and launched while step n runs, so the device does not wait for the host between steps. Step n's
 * tokens are pending then: the sequences hold placeholders ({@link Sequence#appendPending}), which
 * step n + 1 reads on the device, and a sequence that step n finishes has its row in step n + 1
 * computed for nothing and its draw there dropped. Sampling depends on (seed, draw) only, so the
 * tokens are those of a step-by-step run. On the CPU each step is finished before the next is laid out.
 */
public final class LlmEngine implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(LlmEngine.class.getName());

  private final ModelRunner runner;
  private final Scheduler scheduler;
  private final StepBatch batch;
  private final int[] stopTokenIds;
  private final LinkedBlockingQueue<Sequence> incoming = new LinkedBlockingQueue<>();
  private final EngineStats stats = new EngineStats();
  private final Thread loop;
  private volatile boolean closed;

  public LlmEngine(ModelRunner runner, int[] stopTokenIds) {
    if ((long) runner.kvBlocks() * runner.blockSize() < runner.maxSequenceLength()) {
      throw new IllegalArgumentException("the KV cache (" + runner.kvBlocks() + " blocks of " + runner.blockSize()
          + ") cannot hold one sequence of the maximum length " + runner.maxSequenceLength());
    }
    this.runner = runner;
    EngineOptions options = runner.options();
    this.scheduler = new Scheduler(options.maxNumSeqs(), options.maxBatchTokens(),
        new BlockManager(runner.kvBlocks(), runner.blockSize(), options.prefixCaching()));
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
    String problem = PromptCheck.problem(request.promptIds(), runner);
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
    return PromptCheck.promptLogits(runner, promptIds);
  }

  public ModelRunner runner() {
    return runner;
  }

  /** Counters, and where step listeners are added. */
  public EngineStats stats() {
    return stats;
  }

  /** A launched step: its chunks, and each sample's sequence and the index of its pending token there. */
  private record Step(List<ScheduledChunk> chunks, ModelRunner.Launched launched, Sequence[] sequences, int[] tokenIndex, long start) {}

  private void run() {
    Step inFlight = null;
    try {
      while (!closed) {
        admitIncoming(inFlight == null);
        List<ScheduledChunk> chunks = scheduler.schedule();
        Step next = chunks.isEmpty() ? null : launch(chunks);
        if (inFlight != null) {
          finish(inFlight);
        }
        inFlight = next;
        if (inFlight != null && !runner.overlapsSteps()) {
          finish(inFlight);
          inFlight = null;
        }
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

  /** Takes the requests that arrived; when {@code mayWait} and there is nothing to do, sleeps until one does. */
  private void admitIncoming(boolean mayWait) throws InterruptedException {
    if (mayWait && !scheduler.hasWork()) {
      scheduler.add(incoming.take());
    }
    List<Sequence> arrived = new ArrayList<>();
    incoming.drainTo(arrived);
    arrived.forEach(scheduler::add);
  }

  private Step launch(List<ScheduledChunk> chunks) {
    long start = System.nanoTime();
    chunks.forEach(chunk -> chunk.sequence().scheduledAt(start));
    batch.prepare(chunks, scheduler.takeCopies());
    ModelRunner.Launched launched;
    try {
      synchronized (runner) {
        launched = runner.launch(batch);
      }
    } catch (RuntimeException | Error e) {
      failStep(chunks, e);
      return null;
    }
    scheduler.computed(chunks);
    Sequence[] sequences = new Sequence[batch.samples()];
    int[] tokenIndex = new int[batch.samples()];
    for (int i = 0; i < sequences.length; i++) {
      sequences[i] = batch.sequence(i);
      tokenIndex[i] = sequences[i].appendPending(i);
    }
    return new Step(chunks, launched, sequences, tokenIndex, start);
  }

  private void finish(Step step) {
    int[] sampled;
    try {
      synchronized (runner) {
        sampled = step.launched().tokens();
      }
    } catch (RuntimeException | Error e) {
      failStep(step.chunks(), e);
      return;
    }
    // A sequence finished (or failed) while this step ran has its draw here dropped.
    boolean[] kept = new boolean[sampled.length];
    int keptCount = 0;
    for (int i = 0; i < sampled.length; i++) {
      kept[i] = step.sequences()[i].status != Sequence.Status.FINISHED;
      keptCount += kept[i] ? 1 : 0;
    }
    // Counted before the tokens complete any request, so a caller that sees its result sees its step.
    stats.recordStep(step.chunks(), keptCount, scheduler.preemptions(), scheduler.cachedTokens(), System.nanoTime() - step.start());
    for (int i = 0; i < sampled.length; i++) {
      if (kept[i]) {
        accept(step.sequences()[i], step.tokenIndex()[i], sampled[i]);
      }
    }
  }

  private void failStep(List<ScheduledChunk> chunks, Throwable e) {
    LOG.log(Level.WARNING, "model step failed; failing its " + chunks.size() + " sequences", e);
    chunks.forEach(chunk -> fail(chunk.sequence(), e));
  }

  private void accept(Sequence seq, int tokenIndex, int token) {
    seq.resolve(tokenIndex, token);
    scheduler.resolved(seq);
    try {
      seq.listener.onToken(token);
    } catch (RuntimeException e) {
      fail(seq, e);
      return;
    }
    FinishReason reason = isStop(token) ? FinishReason.STOP : seq.known() >= seq.maxLength() ? FinishReason.LENGTH : null;
    if (reason != null) {
      scheduler.finish(seq);
      stats.recordFinished();
      seq.result.complete(seq.result(reason));
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

  private void fail(Sequence seq, Throwable cause) {
    scheduler.finish(seq);
    seq.result.completeExceptionally(cause);
  }

  private void failAll(RuntimeException cause) {
    scheduler.all().forEach(seq -> fail(seq, cause));
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
}
