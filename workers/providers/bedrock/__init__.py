"""AWS Bedrock: OpenAI chat over Converse / ConverseStream and Titan embeddings over InvokeModel,
signed with SigV4 (no AWS SDK). Modules: `sigv4` (signing), `eventstream` (the binary stream
framing), `converse_request` / `converse_response` (the format converters), `errors`,
`embeddings`, and `adapter` (the Provider)."""

from workers.providers.bedrock.adapter import Bedrock

__all__ = ["Bedrock"]
