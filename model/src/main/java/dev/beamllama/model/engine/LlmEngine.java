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
 * them out in the {@link StepBatch}, let the {@link ModelRunner} compute and sample, then append
 * tokens and finish the sequences that hit a stop token or their length. Sequences from all callers
 * share every step.
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

  private void run() {
    try {
      while (!closed) {
        admitIncoming();
        List<ScheduledChunk> chunks = scheduler.schedule();
        if (!chunks.isEmpty()) {
          step(chunks);
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

  private void admitIncoming() throws InterruptedException {
    if (!scheduler.hasWork()) {
      scheduler.add(incoming.take()); // idle: sleep until a request arrives
    }
    List<Sequence> arrived = new ArrayList<>();
    incoming.drainTo(arrived);
    arrived.forEach(scheduler::add);
  }

  private void step(List<ScheduledChunk> chunks) {
    long start = System.nanoTime();
    chunks.forEach(chunk -> chunk.sequence().scheduledAt(start));
    batch.prepare(chunks, scheduler.takeCopies());
    int[] sampled;
    try {
      synchronized (runner) {
        sampled = runner.step(batch);
      }
    } catch (RuntimeException | Error e) {
      LOG.log(Level.WARNING, "model step failed; failing its " + chunks.size() + " sequences", e);
      chunks.forEach(chunk -> fail(chunk.sequence(), e));
      return;
    }
    scheduler.computed(chunks);
    stats.recordStep(chunks, scheduler.preemptions(), scheduler.cachedTokens(), System.nanoTime() - start);
    for (int i = 0; i < batch.samples(); i++) {
      accept(batch.sequence(i), sampled[i]);
    }
  }

  private void accept(Sequence seq, int token) {
    seq.append(token);
    try {
      seq.listener.onToken(token);
    } catch (RuntimeException e) {
      fail(seq, e);
      return;
    }
    FinishReason reason = isStop(token) ? FinishReason.STOP : seq.length() >= seq.maxLength() ? FinishReason.LENGTH : null;
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
