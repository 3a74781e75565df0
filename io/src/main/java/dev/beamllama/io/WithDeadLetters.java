package dev.beamllama.io;

import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.PInput;
import org.apache.beam.sdk.values.POutput;
import org.apache.beam.sdk.values.PValue;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;

/**
 * The result of a step that can refuse records: what it produced, and a dead letter for every
 * record it could not process. Each step's dead letters are joined and written together.
 */
public final class WithDeadLetters<T> implements POutput {
  private final TupleTag<T> outputTag;
  private final PCollection<T> output;
  private final PCollection<DeadLetter> deadLetters;

  private WithDeadLetters(TupleTag<T> outputTag, PCollection<T> output, PCollection<DeadLetter> deadLetters) {
    this.outputTag = outputTag;
    this.output = output;
    this.deadLetters = deadLetters;
  }

  /** The tag a DoFn of such a step emits dead letters on. */
  public static final TupleTag<DeadLetter> DEAD_LETTERS = new TupleTag<>("deadLetters") {};

  /**
   * Applies {@code fn}, whose main output is tagged {@code outputTag} and whose refused records go to
   * {@link #DEAD_LETTERS}, and sets both coders.
   */
  public static <I, T> WithDeadLetters<T> apply(
      PCollection<I> input, String name, DoFn<I, T> fn, TupleTag<T> outputTag, Coder<T> outputCoder) {
    PCollectionTuple outputs = input.apply(name, ParDo.of(fn).withOutputTags(outputTag, TupleTagList.of(DEAD_LETTERS)));
    return new WithDeadLetters<>(outputTag,
        outputs.get(outputTag).setCoder(outputCoder),
        outputs.get(DEAD_LETTERS).setCoder(JsonCoder.of(DeadLetter.class)));
  }

  public PCollection<T> output() {
    return output;
  }

  public PCollection<DeadLetter> deadLetters() {
    return deadLetters;
  }

  @Override
  public Pipeline getPipeline() {
    return output.getPipeline();
  }

  @Override
  public Map<TupleTag<?>, PValue> expand() {
    return Map.of(outputTag, output, DEAD_LETTERS, deadLetters);
  }

  @Override
  public void finishSpecifyingOutput(String transformName, PInput input, PTransform<?, ?> transform) {}
}
