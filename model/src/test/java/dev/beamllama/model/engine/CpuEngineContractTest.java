package dev.beamllama.model.engine;

import dev.beamllama.model.Engines;

/** The engine contract on the pure-Java CPU backend (the reference: CI has no GPU). */
class CpuEngineContractTest extends EngineContractTest {
  @Override
  Engines.Kind kind() {
    return Engines.Kind.CPU;
  }
}
