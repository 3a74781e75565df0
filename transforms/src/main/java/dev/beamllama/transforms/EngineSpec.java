package dev.beamllama.transforms;

import dev.beamllama.model.Engines;
import dev.beamllama.model.engine.EngineOptions;
import java.io.Serializable;

/**
 * Which engine a job needs: the checkpoint, the backend and its sizing. Engines are shared per JVM
 * by equal specs. {@code threads} 0 means all cores; {@code weights} is how the CPU engine holds them.
 */
public record EngineSpec(
    String modelPath, Engines.Kind kind, int maxNumSeqs, int maxBatchTokens, long kvCacheBytes, int threads, double gpuMemoryUtilization,
    EngineOptions.Weights weights)
    implements Serializable {

  public EngineOptions options() {
    EngineOptions defaults = EngineOptions.defaults();
    return defaults
        .withMaxNumSeqs(maxNumSeqs)
        .withMaxBatchTokens(maxBatchTokens)
        .withKvCacheBytes(kvCacheBytes)
        .withThreads(threads > 0 ? threads : defaults.threads())
        .withGpuMemoryUtilization(gpuMemoryUtilization)
        .withWeights(weights);
  }
}
