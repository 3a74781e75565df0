package dev.beamllama.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.llama.ForwardTrace;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** An engine installed for a spec is what the job's DoFns lease for it, instead of a load, until its last lease is returned. */
class EngineRegistryTest {
  /** A runner that is never stepped here: only its closing matters. */
  private static final class IdleRunner implements ModelRunner {
    final AtomicBoolean closed = new AtomicBoolean();

    @Override public EngineOptions options() { return EngineOptions.defaults().withSizingDefaults(4, 64); }
    @Override public int kvBlocks() { return 16; }
    @Override public int blockSize() { return 16; }
    @Override public int maxSequenceLength() { return 64; }
    @Override public int vocabularySize() { return 100; }
    @Override public int[] step(StepBatch batch) { throw new UnsupportedOperationException(); }
    @Override public float[][] promptLogits(int[] promptIds, ForwardTrace trace) { throw new UnsupportedOperationException(); }
    @Override public String describe() { return "idle"; }
    @Override public void close() { closed.set(true); }
  }

  @Test
  void anInstalledEngineIsLeasedInsteadOfLoadedAndClosedWithItsLastLease() {
    // A checkpoint that does not exist: a load would fail, so only the installed engine can be leased.
    EngineSpec spec = new EngineSpec("/nonexistent/installed-engine-test", Engines.Kind.CPU, EngineOptions.defaults());
    IdleRunner runner = new IdleRunner();
    LlmEngine engine = new LlmEngine(runner, new int[0]);
    int loads = EngineRegistry.loads();
    EngineRegistry.Lease installed = EngineRegistry.install(spec, engine);
    assertThrows(IllegalStateException.class, () -> EngineRegistry.install(spec, engine), "one engine per spec");
    EngineRegistry.Lease leased = EngineRegistry.acquire(spec);
    assertSame(engine, leased.engine());
    assertFalse(leased.loadedNow());
    assertEquals(loads, EngineRegistry.loads(), "not counted as a load");
    installed.close();
    assertFalse(runner.closed.get(), "a DoFn still holds it");
    leased.close();
    assertTrue(runner.closed.get(), "closed with its last lease");
    assertThrows(RuntimeException.class, () -> EngineRegistry.acquire(spec), "gone: the next lease loads the spec's checkpoint");
  }
}
