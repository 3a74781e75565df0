package dev.beamllama.model;

import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import java.util.Locale;
import java.util.logging.Logger;

/** Builds engines for a checkpoint directory. */
public final class Engines {
  private static final Logger LOG = Logger.getLogger(Engines.class.getName());

  /** Which backend runs the model; {@code AUTO} takes CUDA when a GPU is usable, else the CPU. */
  public enum Kind {
    AUTO,
    CPU,
    CUDA;

    public static Kind parse(String value) {
      try {
        return valueOf(value.trim().toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("unknown engine '" + value + "': use auto, cpu or cuda");
      }
    }
  }

  private Engines() {}

  public static LlmEngine create(ModelDirectory model, Kind kind, EngineOptions options) {
    return switch (kind) {
      case CPU -> cpu(model, options);
      case CUDA -> throw new UnsupportedOperationException(
          "--engine=cuda: this build has no CUDA engine yet; use --engine=cpu or auto");
      case AUTO -> {
        LOG.info("engine auto: no CUDA engine in this build, using the CPU engine");
        yield cpu(model, options);
      }
    };
  }

  /** The pure-Java CPU engine. */
  public static LlmEngine cpu(ModelDirectory model, EngineOptions options) {
    SafetensorsCheckpoint weights = model.openWeights();
    try {
      return new LlmEngine(new CpuModelRunner(weights, model.config(), options), options, model.stopTokenIds());
    } catch (RuntimeException e) {
      weights.close();
      throw e;
    }
  }
}
