package dev.beamllama.model.config;

/**
 * Rotary position embedding settings: the base {@code theta} and an optional scaling of the
 * frequencies. {@code LLAMA3} is Llama 3.1's wavelength-dependent scaling.
 */
public record RopeConfig(
    double theta,
    Type type,
    double factor,
    double lowFreqFactor,
    double highFreqFactor,
    int originalMaxPositionEmbeddings) {

  public enum Type {
    DEFAULT,
    LINEAR,
    LLAMA3
  }

  public static RopeConfig unscaled(double theta) {
    return new RopeConfig(theta, Type.DEFAULT, 1.0, 0, 0, 0);
  }

  /**
   * Reads both layouts: transformers 4 ({@code rope_theta} + {@code rope_scaling}) and transformers 5
   * ({@code rope_parameters} holding {@code rope_theta} and the scaling fields).
   */
  static RopeConfig parse(Json config) {
    Json parameters = config.child("rope_parameters");
    Json scaling = parameters != null ? parameters : config.child("rope_scaling");
    double theta = (parameters != null ? parameters : config).optionalDouble("rope_theta")
        .or(() -> config.optionalDouble("rope_theta"))
        .orElse(10000.0);
    if (scaling == null) {
      return unscaled(theta);
    }
    String typeName = scaling.optionalString("rope_type").or(() -> scaling.optionalString("type")).orElse("default");
    return switch (typeName) {
      case "default" -> unscaled(theta);
      case "linear" -> new RopeConfig(theta, Type.LINEAR, requiredDouble(scaling, "factor"), 0, 0, 0);
      case "llama3" -> new RopeConfig(
          theta,
          Type.LLAMA3,
          requiredDouble(scaling, "factor"),
          requiredDouble(scaling, "low_freq_factor"),
          requiredDouble(scaling, "high_freq_factor"),
          scaling.requiredInt("original_max_position_embeddings"));
      default -> throw config.error("rope scaling type \"" + typeName + "\" is not supported (default, linear, llama3 are)");
    };
  }

  private static double requiredDouble(Json json, String field) {
    return json.optionalDouble(field).orElseThrow(() -> json.error("rope scaling needs \"" + field + "\""));
  }
}
