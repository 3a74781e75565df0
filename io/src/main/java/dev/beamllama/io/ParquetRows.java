package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.avro.AvroReadSupport;
import org.apache.parquet.avro.AvroSchemaConverter;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.io.DelegatingSeekableInputStream;
import org.apache.parquet.io.InputFile;
import org.apache.parquet.io.SeekableInputStream;
import org.apache.parquet.schema.MessageType;

/**
 * Reads the rows of a Parquet file from a Beam channel as JSON objects, so that Parquet and JSONL
 * records go through the same validation. Any schema is read; rows without the expected fields
 * fail validation one by one and are accounted for. Strings are decoded strictly, as JSONL lines
 * are: a row with a string column that is not UTF-8 is refused, naming the column.
 */
final class ParquetRows {
  private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  interface Visitor {
    void row(long number, JsonNode row) throws IOException;

    /** A row that is no record: one of its strings is not UTF-8. */
    void failure(long number, ErrorKind kind, String message) throws IOException;
  }

  private static final class NotUtf8 extends Exception {
    NotUtf8(String message) {
      super(message, null, false, false);
    }
  }

  private ParquetRows() {}

  static void read(SeekableByteChannel channel, Visitor visitor) throws IOException {
    try (ParquetReader<GenericRecord> reader = new ParquetReader.Builder<GenericRecord>(new ChannelInputFile(channel)) {
      @Override
      protected ReadSupport<GenericRecord> getReadSupport() {
        return new StringsAsBytes();
      }
    }.withConf(new Configuration(false)).build()) {
      long number = 0;
      GenericRecord row;
      while ((row = reader.read()) != null) {
        number++;
        JsonNode json;
        try {
          json = toJson(row, "");
        } catch (NotUtf8 e) {
          visitor.failure(number, ErrorKind.INVALID_UTF8, e.getMessage());
          continue;
        }
        visitor.row(number, json);
      }
    }
  }

  /**
   * Avro's view of the rows in which every string arrives as its bytes (Avro's Utf8), which
   * {@link #toJson} decodes strictly. Parquet decodes a string itself, leniently (bytes that are not
   * UTF-8 become U+FFFD), where the Avro schema a writer stored in the file asks for Java strings
   * ({@code avro.java.string}) and in its "compatible" reading: so the rows are read under the
   * schema Parquet's own column types imply, not compatibly.
   */
  private static final class StringsAsBytes extends AvroReadSupport<GenericRecord> {
    StringsAsBytes() {
      super(GenericData.get());
    }

    @Override
    public ReadContext init(Configuration conf, Map<String, String> keyValueMetaData, MessageType fileSchema) {
      // A repeated group of one field is the spec's three-level list (pyarrow's and Spark's
      // messages.list.element), not a list of one-field records, which parquet-avro assumes by default.
      conf.setBoolean(AvroSchemaConverter.ADD_LIST_ELEMENT_RECORDS, false);
      setAvroReadSchema(conf, new AvroSchemaConverter(conf).convert(fileSchema));
      conf.setBoolean(AVRO_COMPATIBILITY, false);
      return super.init(conf, keyValueMetaData, fileSchema);
    }
  }

  /** The number of rows the file's footer declares, without reading them. */
  static long rowCount(SeekableByteChannel channel) throws IOException {
    try (ParquetFileReader reader = ParquetFileReader.open(new ChannelInputFile(channel))) {
      return reader.getRecordCount();
    }
  }

  /** {@code value}, found at {@code path} in its row ({@code messages[1].content}), as JSON. */
  private static JsonNode toJson(Object value, String path) throws NotUtf8 {
    if (value == null) {
      return JSON.nullNode();
    }
    if (value instanceof GenericRecord record) {
      ObjectNode object = JSON.objectNode();
      for (Schema.Field field : record.getSchema().getFields()) {
        object.set(field.name(), toJson(record.get(field.name()), path.isEmpty() ? field.name() : path + "." + field.name()));
      }
      return object;
    }
    if (value instanceof Utf8 text) {
      return JSON.textNode(decode(text, path));
    }
    if (value instanceof Integer i) {
      return JSON.numberNode(i);
    }
    if (value instanceof Long l) {
      return JSON.numberNode(l);
    }
    if (value instanceof Float f) {
      return JSON.numberNode(f);
    }
    if (value instanceof Double d) {
      return JSON.numberNode(d);
    }
    if (value instanceof Boolean b) {
      return JSON.booleanNode(b);
    }
    if (value instanceof Collection<?> list) {
      ArrayNode array = JSON.arrayNode();
      int i = 0;
      for (Object element : list) {
        array.add(toJson(element, path + "[" + i++ + "]"));
      }
      return array;
    }
    if (value instanceof Map<?, ?> map) {
      ObjectNode object = JSON.objectNode();
      for (Map.Entry<?, ?> entry : map.entrySet()) {
        String key = entry.getKey() instanceof Utf8 k ? decode(k, path) : String.valueOf(entry.getKey());
        object.set(key, toJson(entry.getValue(), path + "." + key));
      }
      return object;
    }
    if (value instanceof ByteBuffer bytes) {
      byte[] copy = new byte[bytes.remaining()];
      bytes.duplicate().get(copy);
      return JSON.binaryNode(copy);
    }
    return JSON.textNode(String.valueOf(value));
  }

  /** The string's bytes as UTF-8, strictly: {@link Utf8#toString()} would replace what does not decode with U+FFFD. */
  private static String decode(Utf8 text, String path) throws NotUtf8 {
    ByteBuffer bytes = ByteBuffer.wrap(text.getBytes(), 0, text.getByteLength());
    CharBuffer chars = CharBuffer.allocate(text.getByteLength());
    CoderResult result = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT)
        .decode(bytes, chars, true);
    if (result.isError()) {
      throw new NotUtf8("\"" + path + "\" is not valid UTF-8 (at byte " + bytes.position() + " of " + text.getByteLength() + ")");
    }
    return chars.flip().toString();
  }

  /** Parquet's view of a seekable Beam channel. */
  private record ChannelInputFile(SeekableByteChannel channel) implements InputFile {
    @Override
    public long getLength() throws IOException {
      return channel.size();
    }

    @Override
    public SeekableInputStream newStream() {
      return new DelegatingSeekableInputStream(java.nio.channels.Channels.newInputStream(channel)) {
        @Override
        public long getPos() throws IOException {
          return channel.position();
        }

        @Override
        public void seek(long position) throws IOException {
          channel.position(position);
        }
      };
    }
  }
}
