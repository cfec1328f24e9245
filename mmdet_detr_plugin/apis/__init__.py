from .attention import attention_to_image, predict_with_attention

__all__ = ['attention_to_image', 'predict_with_attention']
